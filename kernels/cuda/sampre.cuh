// SAM slice preprocessing: windowed CT slices to the image encoder's input batch.
#ifndef MEDLSAM_SAMPRE_CUH
#define MEDLSAM_SAMPRE_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// MLK_SAM_SIZE is kernels.SAMImageSize; MLK_SAM_MAX_EDGE bounds a slice's edge.
#define MLK_SAM_SIZE 1024
#define MLK_SAM_MAX_EDGE 16384

enum { MLK_SAM_F32 = 0, MLK_SAM_F16 = 1 };

// mlk_sam_preprocess_workspace returns the bytes of device workspace that
// mlk_sam_preprocess needs for slices of nx x ny voxels, or 0 when a size is out of range.
size_t mlk_sam_preprocess_workspace(int nx, int ny);

// mlk_sam_preprocess enqueues kernels.SAMPreprocess: slices[b] (b < nslices) of the uint8
// windowed volume win (shape nx, ny, nz, i fastest) resized to 1024 x 1024 and normalised
// into dst, [nslices][3][1024][1024] of float32 (out MLK_SAM_F32) or IEEE half (MLK_SAM_F16,
// the float32 value rounded to nearest even). slices is read during the call only. ws is
// device workspace of at least mlk_sam_preprocess_workspace(nx, ny) bytes, used on s.
int mlk_sam_preprocess(int dev, mlk_stream s, int out, uint64_t dst, uint64_t win, int nx,
                       int ny, int nz, const int *slices, int nslices, uint64_t ws,
                       size_t ws_bytes, mlk_status *st);

// mlk_sam_preprocess_batch is mlk_sam_preprocess between the copies in and out of a batch
// (see mlk_copy): one call stages the slices in, preprocesses them and, when out copies are
// given, brings the encoder input back and waits for it.
int mlk_sam_preprocess_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                             const mlk_copy *out_copies, int nout, int out, uint64_t dst,
                             uint64_t win, int nx, int ny, int nz, const int *slices,
                             int nslices, uint64_t ws, size_t ws_bytes, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_SAMPRE_CUH
