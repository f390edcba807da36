// scipy.ndimage.zoom's cubic B-spline resampling (the reference's image resampling): the
// device twin of kernels.ZoomCubic, computing the same float64 arithmetic in the same order.
#ifndef MEDLSAM_ZOOM_CUH
#define MEDLSAM_ZOOM_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// mlk_zoom_spline is the part of kernels.ZoomCubicPlan that is not a table: the filter's
// pole z and gain, the terms of the causal start that count, and z^(n-1) per axis.
typedef struct {
    double pole, gain;
    int horizon;
    double pole_power[3];
} mlk_zoom_spline;

// mlk_zoom_tables_bytes is the size of the interpolation tables for output sizes ox, oy, oz:
// the int32 indices of axes 0, 1, 2 (4*o each) one after another, padded to 8 bytes, then
// the float64 weights of axes 0, 1, 2 (4*o each). The caller fills them from
// kernels.ZoomCubicPlan.
size_t mlk_zoom_tables_bytes(int ox, int oy, int oz);

// mlk_zoom_workspace_bytes is the device workspace mlk_zoom_cubic needs (tables first, then
// two float32 intermediate volumes and the float64 coefficients of the largest pass), or 0
// when a size is not positive.
size_t mlk_zoom_workspace_bytes(int ox, int oy, int oz, int nx, int ny, int nz);

// mlk_zoom_cubic enqueues kernels.ZoomCubic of src (float32, nx, ny, nz, i fastest) into dst
// (ox, oy, oz): three separable passes (i, j, then k), each turning every line into spline
// coefficients (gain, causal and anti-causal recursions with mirror starts) and evaluating
// them through the tables. ws (ws_bytes) starts with the tables, already on the device.
int mlk_zoom_cubic(int dev, mlk_stream s, uint64_t dst, int ox, int oy, int oz, uint64_t src,
                   int nx, int ny, int nz, const mlk_zoom_spline *spline, uint64_t ws,
                   size_t ws_bytes, mlk_status *st);

// mlk_zoom_cubic_batch is mlk_zoom_cubic between the copies in and out of a batch (mlk_copy);
// the copies in bring the tables into ws.
int mlk_zoom_cubic_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                         const mlk_copy *out_copies, int nout, uint64_t dst, int ox, int oy,
                         int oz, uint64_t src, int nx, int ny, int nz,
                         const mlk_zoom_spline *spline, uint64_t ws, size_t ws_bytes,
                         mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_ZOOM_CUH
