// cpunet.h: C entry points of package cpunet (CPU kernels for 3D networks, channels-last).
//
// Activations are single-sample, channels-last tensors: voxel (z, y, x), channel c lives at
// ((z*h + y)*w + x)*cp + c, where cp, the channel stride, is the channel count rounded up to
// a multiple of 16, and the padding channels hold zeros. Every entry exists in three builds
// of one source, impl.h (suffixes _avx512, _avx2, _generic); the Go side picks one. Shapes
// travel in structs without pointers and buffers as arguments, as cgo's rules require.
#ifndef CPUNET_H
#define CPUNET_H

#include <stdint.h>

// CPUNET_CHUNK is the largest number of Winograd tiles one conv step transforms, multiplies
// and transforms back together; a multiple of every register-tile height. Each weight panel
// serves that many tiles; 48 and 96 measured the same on the development machine.
#define CPUNET_CHUNK 96

// CPUNET_POSITIONS is the number of transformed values per tile and channel: a tile is
// 2 x 4 x 4 outputs (z, y, x) from 4 x 6 x 6 inputs, F(2,3) along z and F(4,3) along y, x.
#define CPUNET_POSITIONS 144

// cpunet_conv_geom describes one 3x3x3 convolution (stride 1, zero padding 1, bias) by
// Winograd F(2x4x4, 3x3x3). Its input is the channel-wise concatenation of src1 (cp1
// channels) and src2 (cp2 channels; none when cp2 == 0).
typedef struct {
	int64_t cp1, cp2;
	int64_t d, h, w;       // spatial size of input and output; d even, h and w multiples of 4
	int64_t coutp;         // output channel stride
	int64_t nrw;           // weight panel width: 16, 32, 48 or 64, dividing coutp
} cpunet_conv_geom;

// Buffers of cpunet_conv: u the transformed weights [POSITIONS][coutp/nrw][cp1+cp2][nrw],
// bias [coutp] (zero in the padding), dst the output (channel stride coutp), v and m scratch
// of 36*CHUNK*(cp1+cp2) and (36+32)*CHUNK*coutp floats (one z plane of positions; the
// outputs), stats [coutp] to which the per-channel sums of the output are added. The call covers output
// tiles [t0, t1), tile (tz, ty, tx) = the 2x4x4 output voxels from (2tz, 4ty, 4tx),
// numbered with tx fastest.
#define CPUNET_DECLARE(sfx)                                                                   \
	void cpunet_conv##sfx(const cpunet_conv_geom *g, const float *src1, const float *src2,    \
		const float *u, const float *bias, float *dst, float *v, float *m, double *stats,     \
		int64_t t0, int64_t t1);                                                              \
	void cpunet_conv1##sfx(const float *src, int64_t d, int64_t h, int64_t w,                 \
		const float *w27, const float *bias, int64_t coutp, float *dst, double *stats,        \
		int64_t z0, int64_t z1);                                                              \
	void cpunet_norm_relu##sfx(float *x, int64_t n, int64_t cp, const float *mean,            \
		const float *inv);                                                                    \
	void cpunet_sqdev##sfx(const float *x, int64_t n, int64_t cp, const float *mean,          \
		double *out);                                                                         \
	void cpunet_maxpool##sfx(float *dst, const float *src, int64_t d, int64_t h, int64_t w,   \
		int64_t cp, int64_t z0, int64_t z1);                                                  \
	void cpunet_upsample##sfx(float *dst, const float *src, int64_t d, int64_t h,             \
		int64_t w, int64_t cp, int64_t z0, int64_t z1);

// cpunet_conv1: direct 3x3x3 convolution of a one-channel [d][h][w] input (the first layer)
// for output planes z in [z0, z1); w27 is [27][coutp] by tap (kz*3 + ky)*3 + kx.
// cpunet_norm_relu: x = max(0, (x - mean[c]) * inv[c]) over n voxels.
// cpunet_sqdev: out[c] += sum over n voxels of (x - mean[c])^2, in float within the call.
// cpunet_maxpool: 2x2x2 max pooling of a [d][h][w] input, output planes [z0, z1).
// cpunet_upsample: trilinear x2 upsampling of a [d][h][w] input with half-pixel centres
// (ONNX Resize linear half_pixel; torch align_corners=False), output planes [z0, z1).
CPUNET_DECLARE(_avx512)
CPUNET_DECLARE(_avx2)
CPUNET_DECLARE(_generic)

// cpunet_to_planar copies voxels [v0, v1) of a channels-last tensor into the channel-major
// layout dst[c*nvox + v], for the c < ch real channels.
void cpunet_to_planar(float *dst, const float *src, int64_t nvox, int64_t ch, int64_t cp,
	int64_t v0, int64_t v1);

// cpunet_cpu_level returns 2 when the CPU and OS run the AVX-512 build, 1 for AVX2 with FMA,
// 0 otherwise.
int cpunet_cpu_level(void);

#endif
