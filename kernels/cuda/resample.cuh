// Volume resampling to a target spacing: trilinear (images) and nearest (labels).
#ifndef MEDLSAM_RESAMPLE_CUH
#define MEDLSAM_RESAMPLE_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

enum { MLK_RESAMPLE_TRILINEAR = 0, MLK_RESAMPLE_NEAREST = 1 };

// mlk_resample enqueues on stream s the resampling of src (float32, shape nx, ny, nz, i
// fastest) into dst (shape ox, oy, oz) with per-axis ratios r = newSpacing/oldSpacing, under
// the grid convention of the Go package kernels (ResampleTrilinear, ResampleNearest): output
// o samples input o*r, voxel centres 0 aligned; o* must equal floor((n-1)/r + 1e-9) + 1.
// dst and src are device addresses that must not overlap.
int mlk_resample(int dev, mlk_stream s, int mode, uint64_t dst, int ox, int oy, int oz,
                 uint64_t src, int nx, int ny, int nz, double rx, double ry, double rz,
                 mlk_status *st);

// mlk_resample_batch is mlk_resample between the copies in and out of a batch (mlk_copy).
int mlk_resample_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                       const mlk_copy *out_copies, int nout, int mode, uint64_t dst, int ox,
                       int oy, int oz, uint64_t src, int nx, int ny, int nz, double rx,
                       double ry, double rz, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_RESAMPLE_CUH
