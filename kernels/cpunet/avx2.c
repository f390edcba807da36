// The AVX2 + FMA build of impl.h. Off x86-64 it is the baseline build under the AVX2 names,
// so that every entry point links; Best never picks it there.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#endif
#define SFX _avx2
#include "impl.h"
