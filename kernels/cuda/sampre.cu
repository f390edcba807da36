// SAM slice preprocessing. Reference semantics: kernels/sampre.go (LinearTaps,
// samNormTable, SAMPreprocess). The filter taps are built on the device in double with
// round-to-nearest intrinsics in the reference's order, and both passes accumulate in
// float32 in the reference's order without contraction, so the float32 output equals the
// Go reference bit for bit; the half output is that value rounded to nearest even.
#include "sampre.cuh"

#include <cuda_fp16.h>

namespace {

constexpr int S = MLK_SAM_SIZE;
constexpr int kThreads = 128;
constexpr int kSlicesPerLaunch = 256; // slice indices travel as a kernel parameter
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// max_taps bounds the taps of one output of LinearTaps(n, 1024): the triangle of half-width
// max(n/1024, 1) covers at most 2*ceil(n/1024)+1 integers.
int max_taps(int n) { return 2 * ((n + S - 1) / S) + 2; }

// Taps of one axis in the workspace: count[S], then index[T][S] and weight[T][S] (tap-major,
// so that neighbouring outputs read neighbouring words).
struct TapsView {
    int *count;
    int *index;
    float *weight;
    int T;
};

struct Layout {
    size_t rows, cols, table, total;
};

size_t taps_bytes(int n) { return align_up((size_t)S * sizeof(int) * (1 + 2 * (size_t)max_taps(n))); }

Layout layout(int nx, int ny) {
    Layout l;
    l.rows = 0;
    l.cols = l.rows + taps_bytes(ny);
    l.table = l.cols + taps_bytes(nx);
    l.total = l.table + align_up(3 * 256 * sizeof(float));
    return l;
}

TapsView taps_view(char *base, int n) {
    TapsView v;
    v.T = max_taps(n);
    v.count = (int *)base;
    v.index = v.count + S;
    v.weight = (float *)(v.index + (size_t)v.T * S);
    return v;
}

// tap_weight is LinearTaps' unnormalised weight of source j for position x, or 0 when the
// reference skips it.
__device__ __forceinline__ double tap_weight(int j, double x, double support) {
    double w = __dsub_rn(1.0, __ddiv_rn(fabs(__dsub_rn((double)j, x)), support));
    return w > 0.0 ? w : 0.0;
}

// taps_kernel builds LinearTaps(n, 1024) for output blockIdx.x*blockDim.x+threadIdx.x:
// the same double arithmetic, the same skip of non-positive weights, the same edge rule and
// the same sum order, so the float32 weights are the reference's.
__global__ void taps_kernel(TapsView t, int n) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= S) {
        return;
    }
    double scale = __ddiv_rn((double)n, (double)S);
    double support = fmax(scale, 1.0);
    double x = __dsub_rn(__dmul_rn(__dadd_rn((double)o, 0.5), scale), 0.5);
    int lo = (int)floor(__dsub_rn(x, support)) + 1;
    int hi = (int)ceil(__dadd_rn(x, support)) - 1;
    lo = lo > 0 ? lo : 0;
    hi = hi < n - 1 ? hi : n - 1;
    double sum = 0.0;
    int m = 0;
    for (int j = lo; j <= hi; j++) {
        double w = tap_weight(j, x, support);
        if (w > 0.0) {
            sum = __dadd_rn(sum, w);
            m++;
        }
    }
    if (m == 0) { // beyond the edge by at least one sample: the edge sample, weight 1
        int j = (int)round(x);
        j = j < 0 ? 0 : (j > n - 1 ? n - 1 : j);
        t.index[o] = j;
        t.weight[o] = 1.0f;
        t.count[o] = 1;
        return;
    }
    int k = 0;
    for (int j = lo; j <= hi && k < t.T; j++) {
        double w = tap_weight(j, x, support);
        if (w > 0.0) {
            t.index[(size_t)k * S + o] = j;
            t.weight[(size_t)k * S + o] = __double2float_rn(__ddiv_rn(w, sum));
            k++;
        }
    }
    t.count[o] = k;
}

// table_kernel is samNormTable: channel c of grey g is float32((g - mean[c]) / std[c]).
__global__ void table_kernel(float *tab) {
    const double mean[3] = {123.675, 116.28, 103.53};
    const double stdv[3] = {58.395, 57.12, 57.375};
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= 3 * 256) {
        return;
    }
    int c = i / 256, g = i % 256;
    tab[i] = __double2float_rn(__ddiv_rn(__dsub_rn((double)g, mean[c]), stdv[c]));
}

struct SliceList {
    int z[kSlicesPerLaunch];
};

template <typename T> __device__ __forceinline__ T store_as(float v);
template <> __device__ __forceinline__ float store_as<float>(float v) { return v; }
template <> __device__ __forceinline__ __half store_as<__half>(float v) {
    return __float2half_rn(v);
}

// preprocess_kernel computes output pixel (row blockIdx.y, column x) of batch entry
// b0 + blockIdx.z: the vertical pass at each column tap's source column, then the
// horizontal pass, both as SAMPreprocess sums them (from 0, in tap order), the truncation
// with its bias, and the three normalised channels.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    preprocess_kernel(T *__restrict__ dst, const unsigned char *__restrict__ win, int nx,
                      size_t plane, TapsView rows, TapsView cols, const float *__restrict__ tab,
                      SliceList sl, int b0) {
    __shared__ float stab[3 * 256];
    for (int i = threadIdx.x; i < 3 * 256; i += blockDim.x) {
        stab[i] = tab[i];
    }
    __syncthreads();
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int r = blockIdx.y;
    if (c >= S) {
        return;
    }
    const unsigned char *src = win + (size_t)sl.z[blockIdx.z] * plane;
    int nr = rows.count[r], nc = cols.count[c];
    float v = 0.0f;
    for (int tc = 0; tc < nc; tc++) {
        int i = cols.index[(size_t)tc * S + c];
        float buf = 0.0f;
        for (int tr = 0; tr < nr; tr++) {
            int j = rows.index[(size_t)tr * S + r];
            float w = rows.weight[(size_t)tr * S + r];
            buf = __fadd_rn(buf, __fmul_rn(w, (float)__ldg(src + (size_t)j * nx + i)));
        }
        v = __fadd_rn(v, __fmul_rn(cols.weight[(size_t)tc * S + c], buf));
    }
    int g = (int)__fadd_rn(v, 1.0f / 1024);
    g = g < 255 ? g : 255;
    size_t o = ((size_t)(b0 + blockIdx.z) * 3 * S + r) * S + c;
    dst[o] = store_as<T>(stab[g]);
    dst[o + (size_t)S * S] = store_as<T>(stab[256 + g]);
    dst[o + 2 * (size_t)S * S] = store_as<T>(stab[512 + g]);
}

cudaError_t launch(cudaStream_t s, int out, void *dst, const unsigned char *win, int nx, int ny,
                   const int *slices, int nslices, char *ws) {
    Layout l = layout(nx, ny);
    TapsView rows = taps_view(ws + l.rows, ny), cols = taps_view(ws + l.cols, nx);
    float *tab = (float *)(ws + l.table);
    taps_kernel<<<S / kThreads, kThreads, 0, s>>>(rows, ny);
    taps_kernel<<<S / kThreads, kThreads, 0, s>>>(cols, nx);
    table_kernel<<<(3 * 256 + kThreads - 1) / kThreads, kThreads, 0, s>>>(tab);
    size_t plane = (size_t)nx * ny;
    for (int b0 = 0; b0 < nslices; b0 += kSlicesPerLaunch) {
        int n = nslices - b0 < kSlicesPerLaunch ? nslices - b0 : kSlicesPerLaunch;
        SliceList sl;
        for (int b = 0; b < n; b++) {
            sl.z[b] = slices[b0 + b];
        }
        dim3 grid(S / kThreads, S, n);
        if (out == MLK_SAM_F16) {
            preprocess_kernel<__half><<<grid, kThreads, 0, s>>>((__half *)dst, win, nx, plane,
                                                                rows, cols, tab, sl, b0);
        } else {
            preprocess_kernel<float><<<grid, kThreads, 0, s>>>((float *)dst, win, nx, plane, rows,
                                                               cols, tab, sl, b0);
        }
    }
    return cudaGetLastError();
}

} // namespace

extern "C" size_t mlk_sam_preprocess_workspace(int nx, int ny) {
    if (nx < 1 || ny < 1 || nx > MLK_SAM_MAX_EDGE || ny > MLK_SAM_MAX_EDGE) {
        return 0;
    }
    return layout(nx, ny).total;
}

extern "C" int mlk_sam_preprocess(int dev, mlk_stream s, int out, uint64_t dst, uint64_t win,
                                  int nx, int ny, int nz, const int *slices, int nslices,
                                  uint64_t ws, size_t ws_bytes, mlk_status *st) {
    const char *op = "SAM preprocess";
    if (out != MLK_SAM_F32 && out != MLK_SAM_F16) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: unknown output type %d", op, out);
    }
    if (nx < 1 || ny < 1 || nz < 1 || nx > MLK_SAM_MAX_EDGE || ny > MLK_SAM_MAX_EDGE) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: shape [%d %d %d]: edges must be in [1, %d]", op,
                       nx, ny, nz, MLK_SAM_MAX_EDGE);
    }
    if (nslices < 0 || (nslices > 0 && slices == NULL)) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: %d slices from a NULL list", op, nslices);
    }
    for (int b = 0; b < nslices; b++) {
        if (slices[b] < 0 || slices[b] >= nz) {
            return mlk_set(st, MLK_EINVAL, 0, "%s: slices[%d] = %d outside [0, %d)", op, b,
                           slices[b], nz);
        }
    }
    size_t need = layout(nx, ny).total;
    if (ws_bytes < need) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: workspace of %zu bytes, %dx%d slices need %zu",
                       op, ws_bytes, nx, ny, need);
    }
    if (dst == 0 || win == 0 || ws == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL dst, win or workspace", op);
    }
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK || nslices == 0) {
        return rc != MLK_OK ? rc : mlk_ok(st);
    }
    MLK_TRY(st, launch(mlk_cu(s), out, (void *)(uintptr_t)dst,
                       (const unsigned char *)(uintptr_t)win, nx, ny, slices, nslices,
                       (char *)(uintptr_t)ws));
    return mlk_ok(st);
}

extern "C" int mlk_sam_preprocess_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                        const mlk_copy *out_copies, int nout, int out,
                                        uint64_t dst, uint64_t win, int nx, int ny, int nz,
                                        const int *slices, int nslices, uint64_t ws,
                                        size_t ws_bytes, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "SAM preprocess batch");
    if (rc != MLK_OK) {
        return rc;
    }
    if ((rc = mlk_copies(st, mlk_cu(s), in, nin, 1)) != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    rc = mlk_sam_preprocess(dev, s, out, dst, win, nx, ny, nz, slices, nslices, ws, ws_bytes,
                            st);
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}
