// The AVX-512 build of impl.h.
#pragma GCC target("avx512f,avx2,fma")
#define SFX _avx512
#include "impl.h"
