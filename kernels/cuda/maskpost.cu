// Mask post-processing. Reference semantics: kernels/maskpost.go (NewMaskMap, SAMMaskPost):
// sigmoid of each logit in double rounded to float32, then per output pixel the composed
// bilinear (to 1024, align_corners false) and nearest (1024 to h x w, OpenCV's
// INTER_NEAREST) mapping evaluated in float32 without contraction, a pixel going to the
// mask of highest probability above 0.5 (the earliest on ties). The mapping and the
// interpolation are the reference's float32 operations, so they agree bit for bit; the
// sigmoid uses CUDA's exp (1 ulp in double) where Go uses math.Exp, so a probability may
// differ by one float32 ulp in the rare case where the double result straddles a rounding
// boundary.
#include "maskpost.cuh"

namespace {

constexpr int S = 1024; // kernels.SAMImageSize
constexpr int kThreads = 128;
constexpr unsigned kMaxBlocks = 65535u * 4;

__global__ void sigmoid_kernel(float *__restrict__ prob, const float *__restrict__ logits,
                               size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        double e = exp(-(double)__ldg(logits + i));
        prob[i] = __double2float_rn(__ddiv_rn(1.0, __dadd_rn(1.0, e)));
    }
}

// map_at is NewMaskMap for output o of n along an axis of lowres samples.
__device__ __forceinline__ void map_at(int o, int n, int lowres, int &l0, int &l1, float &w0,
                                       float &w1) {
    float scale = __fdiv_rn((float)lowres, (float)S);
    int s = (int)((long long)o * S / n);
    float x = fmaxf(__fsub_rn(__fmul_rn(__fadd_rn((float)s, 0.5f), scale), 0.5f), 0.0f);
    int x0 = (int)x;
    l0 = x0;
    l1 = x0 + 1 < lowres - 1 ? x0 + 1 : lowres - 1;
    w1 = __fsub_rn(x, (float)x0);
    w0 = __fsub_rn(1.0f, w1);
}

__device__ __forceinline__ float mad2(float wa, float a, float wb, float b) {
    return __fadd_rn(__fmul_rn(wa, a), __fmul_rn(wb, b));
}

// label_kernel handles pixel (row blockIdx.y, column x) of batch slice blockIdx.z.
__global__ void __launch_bounds__(kThreads)
    label_kernel(short *__restrict__ vol, int w, int h, int nz, const float *__restrict__ prob,
                 int lowres, int nmasks, const short *__restrict__ labels,
                 const int *__restrict__ starts, const int *__restrict__ zs) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int r = blockIdx.y, k = blockIdx.z;
    int z = zs[k];
    if (c >= w || z < 0 || z >= nz) {
        return;
    }
    int m0 = max(starts[k], 0), m1 = min(starts[k + 1], nmasks);
    int y0, y1, x0, x1;
    float h0, h1, w0, w1;
    map_at(r, h, lowres, y0, y1, h0, h1);
    map_at(c, w, lowres, x0, x1, w0, w1);
    size_t per = (size_t)lowres * lowres;
    size_t a = (size_t)y0 * lowres, b = (size_t)y1 * lowres;
    float best = 0.5f;
    int win = -1;
    for (int m = m0; m < m1; m++) {
        const float *p = prob + (size_t)m * per;
        float v = __fadd_rn(__fmul_rn(h0, mad2(w0, __ldg(p + a + x0), w1, __ldg(p + a + x1))),
                            __fmul_rn(h1, mad2(w0, __ldg(p + b + x0), w1, __ldg(p + b + x1))));
        if (v > best) {
            best = v;
            win = m;
        }
    }
    if (win >= 0) {
        vol[((size_t)z * h + r) * w + c] = labels[win];
    }
}

} // namespace

extern "C" int mlk_mask_post(int dev, mlk_stream s, uint64_t vol, int w, int h, int nz,
                             uint64_t logits, int lowres, int nmasks, uint64_t labels,
                             uint64_t starts, uint64_t zs, int nslices, uint64_t prob,
                             size_t prob_bytes, mlk_status *st) {
    const char *op = "SAM mask post";
    if (w < 1 || h < 1 || nz < 1 || h > 65535 || w > 0x7fffffff / S || h > 0x7fffffff / S) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: volume %dx%dx%d: w, h, nz must be positive, "
                                          "h at most 65535", op, w, h, nz);
    }
    if (lowres < 1 || lowres > MLK_MASK_MAX_LOWRES) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: low-res size %d outside [1, %d]", op, lowres,
                       MLK_MASK_MAX_LOWRES);
    }
    if (nmasks < 0 || nslices < 0 || nslices > 65535) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: %d masks, %d slices (at most 65535)", op,
                       nmasks, nslices);
    }
    size_t n = (size_t)nmasks * lowres * lowres;
    if (prob_bytes < n * sizeof(float)) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: workspace of %zu bytes, %d masks need %zu", op,
                       prob_bytes, nmasks, n * sizeof(float));
    }
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK || nmasks == 0 || nslices == 0) {
        return rc != MLK_OK ? rc : mlk_ok(st);
    }
    if (vol == 0 || logits == 0 || labels == 0 || starts == 0 || zs == 0 || prob == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL volume, logits, labels, starts, zs or "
                                          "workspace", op);
    }
    cudaStream_t cs = mlk_cu(s);
    float *p = (float *)(uintptr_t)prob;
    sigmoid_kernel<<<mlk_blocks(n, 256, kMaxBlocks), 256, 0, cs>>>(
        p, (const float *)(uintptr_t)logits, n);
    dim3 grid((w + kThreads - 1) / kThreads, h, nslices);
    label_kernel<<<grid, kThreads, 0, cs>>>((short *)(uintptr_t)vol, w, h, nz, p, lowres,
                                            nmasks, (const short *)(uintptr_t)labels,
                                            (const int *)(uintptr_t)starts,
                                            (const int *)(uintptr_t)zs);
    MLK_TRY(st, cudaGetLastError());
    return mlk_ok(st);
}

extern "C" int mlk_mask_post_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                   const mlk_copy *out, int nout, uint64_t vol, int w, int h,
                                   int nz, uint64_t logits, int lowres, int nmasks,
                                   uint64_t labels, uint64_t starts, uint64_t zs, int nslices,
                                   uint64_t prob, size_t prob_bytes, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "SAM mask post batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_mask_post(dev, s, vol, w, h, nz, logits, lowres, nmasks, labels, starts, zs,
                           nslices, prob, prob_bytes, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}
