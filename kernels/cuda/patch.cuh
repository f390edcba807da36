// Patch operations of MedLAM's localisation on the device: reorientation of a volume by an
// axis permutation with flips, 64^3 crops of the zero-padded 3 mm grid, and reads of the
// grid at a list of points (the coarse step's air check).
#ifndef MEDLSAM_PATCH_CUH
#define MEDLSAM_PATCH_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// mlk_reorient enqueues the reorientation of src (float32, shape nx, ny, nz, i fastest)
// into dst, as engine/volume's Reorientation.Apply: dst axis n runs along src axis perm[n],
// backwards when flip[n] != 0, so dst has shape (n[perm[0]], n[perm[1]], n[perm[2]]).
// dst and src must not overlap.
int mlk_reorient(int dev, mlk_stream s, uint64_t dst, uint64_t src, int nx, int ny, int nz,
                 const int perm[3], const int flip[3], mlk_status *st);

// mlk_crop_patches enqueues kernels.CropPatches: n patches of edge^3 float32 into dst, patch
// p's voxel (a, b, c) being voxel centres[p] - offset + (a, b, c) of grid (float32, extent
// dz, dy, dx, C order), 0 outside. centres is a device array of n (z, y, x) int32 triples.
int mlk_crop_patches(int dev, mlk_stream s, uint64_t dst, uint64_t grid, int dz, int dy,
                     int dx, uint64_t centres, int n, int offset, int edge, mlk_status *st);

// mlk_gather enqueues kernels.Gather: dst[i] = grid voxel points[i] - offset, 0 outside;
// points is a device array of n (z, y, x) int32 triples.
int mlk_gather(int dev, mlk_stream s, uint64_t dst, uint64_t grid, int dz, int dy, int dx,
               uint64_t points, int n, int offset, mlk_status *st);

// The batch forms: the op between the copies in and out of a batch (mlk_copy).
int mlk_reorient_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                       const mlk_copy *out_copies, int nout, uint64_t dst, uint64_t src, int nx,
                       int ny, int nz, const int perm[3], const int flip[3], mlk_status *st);
int mlk_crop_patches_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                           const mlk_copy *out_copies, int nout, uint64_t dst, uint64_t grid,
                           int dz, int dy, int dx, uint64_t centres, int n, int offset, int edge,
                           mlk_status *st);
int mlk_gather_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                     const mlk_copy *out_copies, int nout, uint64_t dst, uint64_t grid, int dz,
                     int dy, int dx, uint64_t points, int n, int offset, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_PATCH_CUH
