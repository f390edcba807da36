// The AVX-512 build of impl.h. Off x86-64 it is the baseline build under the AVX-512
// names, so that every entry point links; Best never picks it there.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx2,fma")
#endif
#define SFX _avx512
#include "impl.h"
