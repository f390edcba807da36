// Cubic B-spline zoom. Reference semantics: kernels/zoom.go (zoomLines, splineFilter,
// newSplineAxis). Every float64 operation is a round-to-nearest intrinsic, in the Go code's
// order, so that no multiply-add is contracted, and the Go code rounds every product
// explicitly (float64 conversions forbid fusion on every architecture): the results equal
// the CPU's bit for bit.
#include "zoom.cuh"

namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ double dmul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double dadd(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double dsub(double a, double b) { return __dsub_rn(a, b); }

// One pass: the lines of kernels' lineSet (n samples in, n_out out, stride between samples,
// inner adjacent lines per outer block, 0 for the contiguous axis). One thread per line;
// its coefficients live in coef[i*lines + l], so that a warp's accesses are adjacent.
__global__ void zoom_pass_kernel(float *__restrict__ dst, const float *__restrict__ src, int n,
                                 int n_out, long long stride, long long lines, long long inner,
                                 double *__restrict__ coef, const int *__restrict__ idx,
                                 const double *__restrict__ w, double z, double gain,
                                 int horizon, double zn) {
    long long l = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (l >= lines) {
        return;
    }
    long long in0, out0;
    if (inner == 0) {
        in0 = l * n;
        out0 = l * n_out;
    } else {
        long long ob = l / inner, col = l % inner;
        in0 = ob * n * inner + col;
        out0 = ob * n_out * inner + col;
    }
#define C(i) coef[(long long)(i) * lines + l]
    for (int i = 0; i < n; i++) {
        C(i) = (double)__ldg(src + in0 + i * stride);
    }
    if (n > 1) {
        for (int i = 0; i < n; i++) {
            C(i) = dmul(C(i), gain);
        }
        double start = dadd(C(0), dmul(zn, C(n - 1)));
        double zi = z;
        int stop = n - 1 < horizon ? n - 1 : horizon;
        for (int i = 1; i < stop; i++) {
            start = dadd(start, dmul(zi, dadd(C(i), dmul(zn, C(n - 1 - i)))));
            zi = dmul(zi, z);
        }
        double norm = __ddiv_rn(1.0, dsub(1.0, dmul(zn, zn)));
        C(0) = dmul(start, norm);
        for (int i = 1; i < n; i++) {
            C(i) = dadd(C(i), dmul(z, C(i - 1)));
        }
        double k = __ddiv_rn(z, dsub(dmul(z, z), 1.0));
        C(n - 1) = dmul(k, dadd(dmul(z, C(n - 2)), C(n - 1)));
        for (int i = n - 2; i >= 0; i--) {
            C(i) = dmul(z, dsub(C(i + 1), C(i)));
        }
    }
    for (int o = 0; o < n_out; o++) {
        const int *t = idx + 4 * o;
        const double *u = w + 4 * o;
        double v = dadd(dadd(dadd(dmul(u[0], C(t[0])), dmul(u[1], C(t[1]))),
                             dmul(u[2], C(t[2]))),
                        dmul(u[3], C(t[3])));
        dst[out0 + o * stride] = __double2float_rn(v);
    }
#undef C
}

size_t align8(size_t b) { return (b + 7) / 8 * 8; }

size_t tables_bytes(int ox, int oy, int oz) {
    size_t o = (size_t)ox + oy + oz;
    return align8(4 * 4 * o) + 8 * 4 * o;
}

size_t coef_elems(int ox, int oy, int oz, int nx, int ny, int nz) {
    size_t a = (size_t)nx * ny * nz, b = (size_t)ox * ny * nz, c = (size_t)ox * oy * nz;
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

} // namespace

extern "C" size_t mlk_zoom_tables_bytes(int ox, int oy, int oz) {
    if (ox <= 0 || oy <= 0 || oz <= 0) {
        return 0;
    }
    return tables_bytes(ox, oy, oz);
}

extern "C" size_t mlk_zoom_workspace_bytes(int ox, int oy, int oz, int nx, int ny, int nz) {
    if (ox <= 0 || oy <= 0 || oz <= 0 || nx <= 0 || ny <= 0 || nz <= 0) {
        return 0;
    }
    size_t a = align8(4 * (size_t)ox * ny * nz), b = align8(4 * (size_t)ox * oy * nz);
    return tables_bytes(ox, oy, oz) + a + b + 8 * coef_elems(ox, oy, oz, nx, ny, nz);
}

extern "C" int mlk_zoom_cubic(int dev, mlk_stream s, uint64_t dst, int ox, int oy, int oz,
                              uint64_t src, int nx, int ny, int nz,
                              const mlk_zoom_spline *spline, uint64_t ws, size_t ws_bytes,
                              mlk_status *st) {
    const char *op = "zoom cubic";
    size_t need = mlk_zoom_workspace_bytes(ox, oy, oz, nx, ny, nz);
    if (need == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: shapes [%d %d %d] <- [%d %d %d] must be positive",
                       op, ox, oy, oz, nx, ny, nz);
    }
    if (dst == 0 || src == 0 || ws == 0 || spline == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL dst, src, workspace or spline", op);
    }
    if (ws % 8 != 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: workspace address not 8-byte aligned", op);
    }
    if (ws_bytes < need) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: workspace of %zu bytes, %zu needed", op,
                       ws_bytes, need);
    }
    if (spline->horizon < 1 || !(spline->pole < 0 && spline->pole > -1)) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: bad spline pole %g or horizon %d", op,
                       spline->pole, spline->horizon);
    }
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    char *base = (char *)(uintptr_t)ws;
    const int *idx0 = (const int *)base;
    const int *idx1 = idx0 + 4 * (size_t)ox;
    const int *idx2 = idx1 + 4 * (size_t)oy;
    const double *w0 = (const double *)(base + align8(4 * 4 * ((size_t)ox + oy + oz)));
    const double *w1 = w0 + 4 * (size_t)ox;
    const double *w2 = w1 + 4 * (size_t)oy;
    char *p = base + tables_bytes(ox, oy, oz);
    float *a = (float *)p;
    p += align8(4 * (size_t)ox * ny * nz);
    float *b = (float *)p;
    p += align8(4 * (size_t)ox * oy * nz);
    double *coef = (double *)p;
    cudaStream_t cs = mlk_cu(s);
    struct {
        float *out;
        const float *in;
        int n, n_out;
        long long stride, lines, inner;
        const int *idx;
        const double *w;
        double zn;
    } passes[3] = {
        {a, (const float *)(uintptr_t)src, nx, ox, 1, (long long)ny * nz, 0, idx0, w0,
         spline->pole_power[0]},
        {b, a, ny, oy, ox, (long long)ox * nz, ox, idx1, w1, spline->pole_power[1]},
        {(float *)(uintptr_t)dst, b, nz, oz, (long long)ox * oy, (long long)ox * oy,
         (long long)ox * oy, idx2, w2, spline->pole_power[2]},
    };
    for (int i = 0; i < 3; i++) {
        long long blocks = (passes[i].lines + kThreads - 1) / kThreads;
        zoom_pass_kernel<<<(unsigned)blocks, kThreads, 0, cs>>>(
            passes[i].out, passes[i].in, passes[i].n, passes[i].n_out, passes[i].stride,
            passes[i].lines, passes[i].inner, coef, passes[i].idx, passes[i].w, spline->pole,
            spline->gain, spline->horizon, passes[i].zn);
        MLK_TRY(st, cudaGetLastError());
    }
    return mlk_ok(st);
}

extern "C" int mlk_zoom_cubic_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                    const mlk_copy *out_copies, int nout, uint64_t dst, int ox,
                                    int oy, int oz, uint64_t src, int nx, int ny, int nz,
                                    const mlk_zoom_spline *spline, uint64_t ws, size_t ws_bytes,
                                    mlk_status *st) {
    return mlk_batch(dev, s, in, nin, out_copies, nout, "zoom cubic batch", st, [&] {
        return mlk_zoom_cubic(dev, s, dst, ox, oy, oz, src, nx, ny, nz, spline, ws, ws_bytes,
                              st);
    });
}
