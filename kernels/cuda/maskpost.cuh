// SAM mask post-processing: low-resolution logits to labels in a 3D label volume.
#ifndef MEDLSAM_MASKPOST_CUH
#define MEDLSAM_MASKPOST_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

#define MLK_MASK_MAX_LOWRES 4096

// mlk_mask_post enqueues kernels.SAMMaskPost for nslices slices at once. vol is int16
// [nz][h][w] (w fastest); slice k of the batch writes plane zs[k] of vol from masks
// [starts[k], starts[k+1]) of logits (float32 [nmasks][lowres][lowres]) with labels
// labels[m] (int16). starts (nslices+1 int32), zs (nslices int32) and labels are device
// addresses; zs must be distinct and in [0, nz), starts non-decreasing from 0 to nmasks
// (the kernel clamps what it reads to those ranges). prob is device workspace of nmasks *
// lowres^2 float32 for the sigmoids. Pixels claimed by no mask keep their value.
int mlk_mask_post(int dev, mlk_stream s, uint64_t vol, int w, int h, int nz, uint64_t logits,
                  int lowres, int nmasks, uint64_t labels, uint64_t starts, uint64_t zs,
                  int nslices, uint64_t prob, size_t prob_bytes, mlk_status *st);

// mlk_mask_post_batch is mlk_mask_post between the copies in and out of a batch (mlk_copy).
int mlk_mask_post_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                        const mlk_copy *out, int nout, uint64_t vol, int w, int h, int nz,
                        uint64_t logits, int lowres, int nmasks, uint64_t labels,
                        uint64_t starts, uint64_t zs, int nslices, uint64_t prob,
                        size_t prob_bytes, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_MASKPOST_CUH
