// Intensity transforms: MedLAM's HU normalisation and SAM's 8-bit CT window.
#ifndef MEDLSAM_INTENSITY_CUH
#define MEDLSAM_INTENSITY_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// mlk_normalize_hu enqueues kernels.NormalizeHU on n float32 values: dst may equal src.
int mlk_normalize_hu(int dev, mlk_stream s, uint64_t dst, uint64_t src, size_t n,
                     mlk_status *st);

// mlk_minmax enqueues kernels.MinMax of n float32 values (NaNs ignored) into the device
// scratch minmax, two uint32 keys that mlk_sam_window reads (an order-preserving encoding of
// the minimum and maximum; an all-NaN input leaves the minimum above the maximum).
int mlk_minmax(int dev, mlk_stream s, uint64_t minmax, uint64_t src, size_t n, mlk_status *st);

enum { MLK_OUT_U8 = 0, MLK_OUT_F32 = 1 };

// mlk_sam_window enqueues kernels.SAMWindow (out MLK_OUT_U8: dst is uint8) or
// kernels.SAMWindowFloat (MLK_OUT_F32: dst is float32, which may equal src) of the whole
// volume src of n values: a min/max reduction into the 8-byte device scratch minmax, then
// the window itself.
int mlk_sam_window(int dev, mlk_stream s, int out, uint64_t dst, uint64_t src, size_t n,
                   uint64_t minmax, mlk_status *st);

// mlk_normalize_hu_batch and mlk_sam_window_batch are mlk_normalize_hu and mlk_sam_window
// between the copies in and out of a batch (mlk_copy).
int mlk_normalize_hu_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                           const mlk_copy *out_copies, int nout, uint64_t dst, uint64_t src,
                           size_t n, mlk_status *st);
int mlk_minmax_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                     const mlk_copy *out_copies, int nout, uint64_t minmax, uint64_t src,
                     size_t n, mlk_status *st);
int mlk_sam_window_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                         const mlk_copy *out_copies, int nout, int out, uint64_t dst,
                         uint64_t src, size_t n, uint64_t minmax, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_INTENSITY_CUH
