// Resampling kernels. Reference semantics: kernels/resample.go (ResampleTrilinear,
// ResampleNearest) and the grid convention of kernels/doc.go. Sample positions are computed
// in double exactly as the Go code does; the blends use round-to-nearest intrinsics so that
// no multiply-add is contracted and the result matches the Go reference bit for bit.
#include "resample.cuh"

#include <math.h>

namespace {

constexpr int kThreadsX = 128; // output voxels along i per block
constexpr int kSlabZ = 8;      // output k planes per block: the i and j tables are reused

// Axis sample of output index o: continuous index min(o*r, n-1), as kernels.sampleAt.
__device__ __forceinline__ double sample_at(int o, double r, int n) {
    return fmin(__dmul_rn((double)o, r), (double)(n - 1));
}

// lerp is a + w*(b-a) with every operation rounded, as the Go reference evaluates it.
__device__ __forceinline__ float lerp(float a, float b, float w) {
    return __fadd_rn(a, __fmul_rn(w, __fsub_rn(b, a)));
}

__global__ void trilinear_kernel(float *__restrict__ dst, int ox, int oy, int oz,
                                 const float *__restrict__ src, int nx, int ny, int nz,
                                 double rx, double ry, double rz) {
    int oi = blockIdx.x * kThreadsX + threadIdx.x;
    int oj = blockIdx.y;
    if (oi >= ox) {
        return;
    }
    double x = sample_at(oi, rx, nx);
    int x0 = (int)floor(x);
    int x1 = min(x0 + 1, nx - 1);
    float wx = (float)(x - (double)x0);
    double y = sample_at(oj, ry, ny);
    int y0 = (int)floor(y);
    int y1 = min(y0 + 1, ny - 1);
    float wy = (float)(y - (double)y0);
    size_t plane = (size_t)nx * ny;
    int kEnd = min((int)(blockIdx.z + 1) * kSlabZ, oz);
    for (int ok = blockIdx.z * kSlabZ; ok < kEnd; ok++) {
        double z = sample_at(ok, rz, nz);
        int z0 = (int)floor(z);
        int z1 = min(z0 + 1, nz - 1);
        float wz = (float)(z - (double)z0);
        const float *r00 = src + (size_t)z0 * plane + (size_t)y0 * nx;
        const float *r01 = src + (size_t)z0 * plane + (size_t)y1 * nx;
        const float *r10 = src + (size_t)z1 * plane + (size_t)y0 * nx;
        const float *r11 = src + (size_t)z1 * plane + (size_t)y1 * nx;
        float c00, c01, c10, c11;
        if (x1 > x0) {
            c00 = lerp(__ldg(r00 + x0), __ldg(r00 + x1), wx);
            c01 = lerp(__ldg(r01 + x0), __ldg(r01 + x1), wx);
            c10 = lerp(__ldg(r10 + x0), __ldg(r10 + x1), wx);
            c11 = lerp(__ldg(r11 + x0), __ldg(r11 + x1), wx);
        } else { // the clamped tail of kernels.trilinearRow: no blend along i
            c00 = __ldg(r00 + x0);
            c01 = __ldg(r01 + x0);
            c10 = __ldg(r10 + x0);
            c11 = __ldg(r11 + x0);
        }
        float c0 = lerp(c00, c01, wy);
        float c1 = lerp(c10, c11, wy);
        dst[((size_t)ok * oy + oj) * ox + oi] = lerp(c0, c1, wz);
    }
}

__global__ void nearest_kernel(float *__restrict__ dst, int ox, int oy, int oz,
                               const float *__restrict__ src, int nx, int ny, int nz, double rx,
                               double ry, double rz) {
    int oi = blockIdx.x * kThreadsX + threadIdx.x;
    int oj = blockIdx.y;
    if (oi >= ox) {
        return;
    }
    int xi = min((int)floor(__dadd_rn(sample_at(oi, rx, nx), 0.5)), nx - 1);
    int yi = min((int)floor(__dadd_rn(sample_at(oj, ry, ny), 0.5)), ny - 1);
    size_t plane = (size_t)nx * ny;
    int kEnd = min((int)(blockIdx.z + 1) * kSlabZ, oz);
    for (int ok = blockIdx.z * kSlabZ; ok < kEnd; ok++) {
        int zi = min((int)floor(__dadd_rn(sample_at(ok, rz, nz), 0.5)), nz - 1);
        dst[((size_t)ok * oy + oj) * ox + oi] = __ldg(src + (size_t)zi * plane + (size_t)yi * nx + xi);
    }
}

// launch_resample: one thread per output i, one block row per output j, kSlabZ output k
// planes per block.
cudaError_t launch_resample(cudaStream_t s, int mode, float *dst, int ox, int oy, int oz,
                            const float *src, int nx, int ny, int nz, double rx, double ry,
                            double rz) {
    dim3 block(kThreadsX);
    dim3 grid((ox + kThreadsX - 1) / kThreadsX, oy, (oz + kSlabZ - 1) / kSlabZ);
    if (mode == MLK_RESAMPLE_NEAREST) {
        nearest_kernel<<<grid, block, 0, s>>>(dst, ox, oy, oz, src, nx, ny, nz, rx, ry, rz);
    } else {
        trilinear_kernel<<<grid, block, 0, s>>>(dst, ox, oy, oz, src, nx, ny, nz, rx, ry, rz);
    }
    return cudaGetLastError();
}

// out_size is kernels.ResampleShape for one axis, or -1 when it does not fit a grid
// dimension.
long long out_size(int n, double r) {
    double f = floor((double)(n - 1) / r + 1e-9) + 1;
    if (!(f >= 1) || f > 65535.0 * kSlabZ) {
        return -1;
    }
    return (long long)f;
}

} // namespace

extern "C" int mlk_resample(int dev, mlk_stream s, int mode, uint64_t dst, int ox, int oy,
                            int oz, uint64_t src, int nx, int ny, int nz, double rx, double ry,
                            double rz, mlk_status *st) {
    const char *op = mode == MLK_RESAMPLE_NEAREST ? "resample nearest" : "resample trilinear";
    if (mode != MLK_RESAMPLE_TRILINEAR && mode != MLK_RESAMPLE_NEAREST) {
        return mlk_set(st, MLK_EINVAL, 0, "resample: unknown mode %d", mode);
    }
    if (nx <= 0 || ny <= 0 || nz <= 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: src shape [%d %d %d] must be positive", op, nx,
                       ny, nz);
    }
    double r[3] = {rx, ry, rz};
    int n[3] = {nx, ny, nz}, o[3] = {ox, oy, oz};
    for (int a = 0; a < 3; a++) {
        if (!(r[a] > 0) || isinf(r[a])) {
            return mlk_set(st, MLK_EINVAL, 0, "%s: ratio[%d] = %g must be positive and finite",
                           op, a, r[a]);
        }
        long long want = out_size(n[a], r[a]);
        if (want < 0 || (a == 1 && want > 65535)) {
            return mlk_set(st, MLK_EINVAL, 0, "%s: output size along axis %d is too large", op,
                           a);
        }
        if (o[a] != want) {
            return mlk_set(st, MLK_EINVAL, 0,
                           "%s: dst shape[%d] = %d, want %lld for src size %d and ratio %g", op,
                           a, o[a], want, n[a], r[a]);
        }
    }
    if (dst == 0 || src == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL dst or src", op);
    }
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_resample(mlk_cu(s), mode, (float *)(uintptr_t)dst, ox, oy, oz,
                                (const float *)(uintptr_t)src, nx, ny, nz, rx, ry, rz));
    return mlk_ok(st);
}

extern "C" int mlk_resample_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                  const mlk_copy *out_copies, int nout, int mode, uint64_t dst,
                                  int ox, int oy, int oz, uint64_t src, int nx, int ny, int nz,
                                  double rx, double ry, double rz, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "resample batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_resample(dev, s, mode, dst, ox, oy, oz, src, nx, ny, nz, rx, ry, rz, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}
