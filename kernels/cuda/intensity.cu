// Intensity kernels. Reference semantics: kernels/intensity.go (normHU, MinMax, samWindow).
// Both transforms compute in double with round-to-nearest intrinsics (no contraction) and
// round once, so the results equal the Go reference bit for bit.
#include "intensity.cuh"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 65535u * 4;

// normHU: piecewise linear through (-1000, 0), (-200, 0.2), (200, 0.8), (1500, 1); 0 below
// the first knot and for NaN, 1 from the last.
__device__ __forceinline__ float norm_hu(float v) {
    double x = (double)v;
    if (!(x >= -1000.0)) {
        return 0.0f;
    }
    double y;
    if (x < -200.0) {
        y = __dadd_rn(0.0, __dmul_rn(__dsub_rn(x, -1000.0), (0.2 - 0.0) / (-200.0 - -1000.0)));
    } else if (x < 200.0) {
        y = __dadd_rn(0.2, __dmul_rn(__dsub_rn(x, -200.0), (0.8 - 0.2) / (200.0 - -200.0)));
    } else if (x < 1500.0) {
        y = __dadd_rn(0.8, __dmul_rn(__dsub_rn(x, 200.0), (1.0 - 0.8) / (1500.0 - 200.0)));
    } else {
        return 1.0f;
    }
    return __double2float_rn(y);
}

__global__ void normalize_hu_kernel(float *dst, const float *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dst[i] = norm_hu(src[i]);
    }
}

// Order-preserving keys of floats: a larger float has a larger key.
__device__ __forceinline__ unsigned float_key(float v) {
    unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_float(unsigned k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__global__ void minmax_init_kernel(unsigned *mm) {
    mm[0] = 0xffffffffu; // minimum key: above every float
    mm[1] = 0u;          // maximum key: below every float
}

__global__ void minmax_kernel(unsigned *mm, const float *__restrict__ src, size_t n) {
    float lo = __int_as_float(0x7f800000), hi = -__int_as_float(0x7f800000);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = __ldg(src + i);
        lo = fminf(lo, v); // fminf and fmaxf ignore a NaN argument, as MinMax does
        hi = fmaxf(hi, v);
    }
    for (int off = 16; off > 0; off >>= 1) {
        lo = fminf(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = fmaxf(hi, __shfl_down_sync(0xffffffffu, hi, off));
    }
    __shared__ float slo[kThreads / 32], shi[kThreads / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        slo[warp] = lo;
        shi[warp] = hi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < kThreads / 32; w++) {
            lo = fminf(lo, slo[w]);
            hi = fmaxf(hi, shi[w]);
        }
        if (lo <= hi) { // the block saw a value that is not NaN
            atomicMin(&mm[0], float_key(lo));
            atomicMax(&mm[1], float_key(hi));
        }
    }
}

// sam_window maps one raw voxel as kernels.samWindow.at: raw 0 and NaN give 0, else clip
// to [-500, 1000] and scale (c - lo) / span * 255, truncated; a zero span gives 0.
__device__ __forceinline__ unsigned char sam_window(float v, double lo, double span) {
    if (v == 0.0f || v != v || span == 0.0) {
        return 0;
    }
    double c = fmin(fmax((double)v, -500.0), 1000.0);
    return (unsigned char)(int)__dmul_rn(__ddiv_rn(__dsub_rn(c, lo), span), 255.0);
}

template <typename T>
__global__ void sam_window_kernel(T *dst, const float *src, size_t n, const unsigned *mm) {
    unsigned klo = mm[0], khi = mm[1];
    double lo = 0, span = 0;
    if (klo <= khi) {
        lo = fmin(fmax((double)key_float(klo), -500.0), 1000.0);
        double hi = fmin(fmax((double)key_float(khi), -500.0), 1000.0);
        span = __dsub_rn(hi, lo);
    }
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dst[i] = (T)sam_window(src[i], lo, span);
    }
}

cudaError_t launch_normalize_hu(cudaStream_t s, float *dst, const float *src, size_t n) {
    normalize_hu_kernel<<<mlk_blocks(n, kThreads, kMaxBlocks), kThreads, 0, s>>>(dst, src, n);
    return cudaGetLastError();
}

cudaError_t launch_minmax(cudaStream_t s, unsigned *mm, const float *src, size_t n) {
    minmax_init_kernel<<<1, 1, 0, s>>>(mm);
    // Few blocks: each ends in two atomics, and a grid-stride loop keeps the loads coalesced.
    minmax_kernel<<<mlk_blocks(n, kThreads * 16, 4096), kThreads, 0, s>>>(mm, src, n);
    return cudaGetLastError();
}

cudaError_t launch_sam_window(cudaStream_t s, int out, void *dst, const float *src, size_t n,
                              const unsigned *mm) {
    unsigned blocks = mlk_blocks(n, kThreads, kMaxBlocks);
    if (out == MLK_OUT_U8) {
        sam_window_kernel<unsigned char><<<blocks, kThreads, 0, s>>>((unsigned char *)dst, src,
                                                                     n, mm);
    } else {
        sam_window_kernel<float><<<blocks, kThreads, 0, s>>>((float *)dst, src, n, mm);
    }
    return cudaGetLastError();
}

} // namespace

extern "C" int mlk_normalize_hu(int dev, mlk_stream s, uint64_t dst, uint64_t src, size_t n,
                                mlk_status *st) {
    if (dst == 0 || src == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "normalize HU: NULL dst or src");
    }
    int rc = mlk_enter(st, dev, s, "normalize HU");
    if (rc != MLK_OK || n == 0) {
        return rc != MLK_OK ? rc : mlk_ok(st);
    }
    MLK_TRY(st, launch_normalize_hu(mlk_cu(s), (float *)(uintptr_t)dst,
                                    (const float *)(uintptr_t)src, n));
    return mlk_ok(st);
}

extern "C" int mlk_minmax(int dev, mlk_stream s, uint64_t minmax, uint64_t src, size_t n,
                          mlk_status *st) {
    if (minmax == 0 || src == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "min max: NULL scratch or src");
    }
    int rc = mlk_enter(st, dev, s, "min max");
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_minmax(mlk_cu(s), (unsigned *)(uintptr_t)minmax,
                              (const float *)(uintptr_t)src, n));
    return mlk_ok(st);
}

extern "C" int mlk_sam_window(int dev, mlk_stream s, int out, uint64_t dst, uint64_t src,
                              size_t n, uint64_t minmax, mlk_status *st) {
    if (out != MLK_OUT_U8 && out != MLK_OUT_F32) {
        return mlk_set(st, MLK_EINVAL, 0, "SAM window: unknown output type %d", out);
    }
    if (dst == 0 || src == 0 || minmax == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "SAM window: NULL dst, src or scratch");
    }
    int rc = mlk_enter(st, dev, s, "SAM window");
    if (rc != MLK_OK || n == 0) {
        return rc != MLK_OK ? rc : mlk_ok(st);
    }
    unsigned *mm = (unsigned *)(uintptr_t)minmax;
    const float *in = (const float *)(uintptr_t)src;
    MLK_TRY(st, launch_minmax(mlk_cu(s), mm, in, n));
    MLK_TRY(st, launch_sam_window(mlk_cu(s), out, (void *)(uintptr_t)dst, in, n, mm));
    return mlk_ok(st);
}

extern "C" int mlk_normalize_hu_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                      const mlk_copy *out_copies, int nout, uint64_t dst,
                                      uint64_t src, size_t n, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "normalize HU batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_normalize_hu(dev, s, dst, src, n, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}

extern "C" int mlk_sam_window_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                    const mlk_copy *out_copies, int nout, int out, uint64_t dst,
                                    uint64_t src, size_t n, uint64_t minmax, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "SAM window batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_sam_window(dev, s, out, dst, src, n, minmax, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}

extern "C" int mlk_minmax_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                const mlk_copy *out_copies, int nout, uint64_t minmax,
                                uint64_t src, size_t n, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "min max batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_minmax(dev, s, minmax, src, n, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}
