// Entries of cpunet.h with one build only.
#include "cpunet.h"

void cpunet_to_planar(float *dst, const float *src, int64_t nvox, int64_t ch, int64_t cp,
	int64_t v0, int64_t v1) {
	// Blocks of 16 voxels keep the reads of a block in a few cache lines while every channel
	// plane is written 64 bytes at a time.
	for (int64_t b = v0; b < v1; b += 16) {
		const int64_t e = b + 16 < v1 ? b + 16 : v1;
		for (int64_t c = 0; c < ch; c++)
			for (int64_t v = b; v < e; v++) dst[c * nvox + v] = src[v * cp + c];
	}
}

int cpunet_cpu_level(void) {
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 2;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
	return 0;
}
