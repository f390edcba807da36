// Row gather: copies of whole rows of a device array, picked by a device index list, in one
// launch (the decoder's per-box image embeddings, gathered next to each other).
#ifndef MEDLSAM_ROWS_CUH
#define MEDLSAM_ROWS_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// mlk_gather_rows enqueues dst row r = src row idx[r] for r < n, rows of row_bytes bytes
// (a multiple of 4); idx is a device array of n int32 indices, each in [0, src_rows).
// dst and src must not overlap. An index out of range is a programming error the Go side
// refuses before the call; the kernel skips such a row rather than read outside src.
int mlk_gather_rows(int dev, mlk_stream s, uint64_t dst, uint64_t src, size_t row_bytes,
                    int src_rows, uint64_t idx, int n, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_ROWS_CUH
