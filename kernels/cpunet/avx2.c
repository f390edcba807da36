// The AVX2 + FMA build of impl.h.
#pragma GCC target("avx2,fma")
#define SFX _avx2
#include "impl.h"
