// The baseline build of impl.h (SSE2 on amd64, whatever the compiler targets elsewhere).
#define SFX _generic
#include "impl.h"
