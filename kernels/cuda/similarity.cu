// Multi-scale similarity search. Reference semantics: kernels/similarity.go
// (SimilaritySearch.Search): per scale, the query features are L2-normalised over channels
// (torch's F.normalize, norm floored at 1e-12), correlated with the point's kernel as the
// reference's grouped Conv3d with padding k/2 (an (S+1)^3 map), divided by k^3, resized to
// patch^3 trilinearly with align_corners false (torch's float32 source-index arithmetic),
// summed over scales in order; the result is the first maximum in C order.
//
// The correlation runs as a matrix product G = K^T * F (taps x voxels, reduced over
// channels) by a shared-memory tiled SGEMM whose epilogue applies each voxel's inverse norm,
// then a shift-sum kernel adds each tap's row of G at its offset. Summation orders differ
// from the Go reference, so scores agree to float32 rounding, not bit for bit.
//
// TODO(#5): the SGEMM is a plain 64x64 tile with 4x4 micro tiles (shared-memory bound, not
// measured yet on a GPU); an 8x8 micro tile with vector loads, or a shift-sum fused into the
// epilogue to avoid writing G (k^3 x S^3 floats per point), would be the next steps.
// cuBLAS is not used: its static libraries would make the test binaries hundreds of MB.
#include "similarity.cuh"

#include <math.h>

namespace {

constexpr int kThreads = 256;
constexpr int kMaxSize = 256, kMaxKernel = 32, kMaxChannels = 4096, kMaxPatch = 512;
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// ---- L2 norms --------------------------------------------------------------------------

// l2_inverse_kernel writes inv[p][v] = 1/max(||F[p][:][v]||, 1e-12), the sum of squares
// accumulated in channel order in float32 and the rest in double, as kernels.packRow.
__global__ void l2_inverse_kernel(float *__restrict__ inv, const float *__restrict__ feat,
                                  int channels, int s3) {
    int v = blockIdx.x * blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (v >= s3) {
        return;
    }
    const float *f = feat + (size_t)p * channels * s3 + v;
    float ss = 0.0f;
    for (int c = 0; c < channels; c++) {
        float x = __ldg(f + (size_t)c * s3);
        ss = __fadd_rn(ss, __fmul_rn(x, x));
    }
    inv[(size_t)p * s3 + v] = __double2float_rn(1.0 / fmax(sqrt((double)ss), 1e-12));
}

// ---- correlation as a GEMM ---------------------------------------------------------------

constexpr int kBM = 64, kBN = 64, kBK = 16; // tile: taps x voxels x channels
constexpr int kTM = 4, kTN = 4;             // per-thread micro tile, strided by 16

// corr_gemm_kernel computes, for point blockIdx.z, G[t][v] = inv[v] * sum_c K[c][t] F[c][v]
// with K [C][M] (M = k^3 taps) and F [C][N] (N = S^3 voxels). Each thread owns rows
// ty + 16*i and columns tx + 16*j of a 64 x 64 tile, so the stores of a warp are coalesced.
__global__ void __launch_bounds__(kThreads)
    corr_gemm_kernel(float *__restrict__ G, const float *__restrict__ K,
                     const float *__restrict__ F, const float *__restrict__ inv, int M, int N,
                     int C) {
    __shared__ float As[kBK][kBM];
    __shared__ float Bs[kBK][kBN];
    int p = blockIdx.z;
    int t0 = blockIdx.y * kBM, v0 = blockIdx.x * kBN;
    K += (size_t)p * C * M;
    F += (size_t)p * C * N;
    inv += (size_t)p * N;
    G += (size_t)p * M * N;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[kTM][kTN];
#pragma unroll
    for (int i = 0; i < kTM; i++) {
#pragma unroll
        for (int j = 0; j < kTN; j++) {
            acc[i][j] = 0.0f;
        }
    }
    for (int c0 = 0; c0 < C; c0 += kBK) {
#pragma unroll
        for (int i = 0; i < kBK * kBM / kThreads; i++) {
            int e = threadIdx.x + i * kThreads;
            int r = e / kBM, col = e % kBM;
            int c = c0 + r;
            int t = t0 + col, v = v0 + col;
            As[r][col] = (c < C && t < M) ? __ldg(K + (size_t)c * M + t) : 0.0f;
            Bs[r][col] = (c < C && v < N) ? __ldg(F + (size_t)c * N + v) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; kk++) {
            float a[kTM], b[kTN];
#pragma unroll
            for (int i = 0; i < kTM; i++) {
                a[i] = As[kk][ty + 16 * i];
            }
#pragma unroll
            for (int j = 0; j < kTN; j++) {
                b[j] = Bs[kk][tx + 16 * j];
            }
#pragma unroll
            for (int i = 0; i < kTM; i++) {
#pragma unroll
                for (int j = 0; j < kTN; j++) {
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kTM; i++) {
        int t = t0 + ty + 16 * i;
        if (t >= M) {
            continue;
        }
#pragma unroll
        for (int j = 0; j < kTN; j++) {
            int v = v0 + tx + 16 * j;
            if (v < N) {
                G[(size_t)t * N + v] = acc[i][j] * __ldg(inv + v);
            }
        }
    }
}

// shift_sum_kernel writes the reference's conv output map[p][o], o in [0, S]^3:
// sum over taps t = (tz, ty, tx) of G[t][o - k/2 + t] where that voxel is inside [0, S)^3
// (the zero padding). The map is not yet divided by k^3.
__global__ void shift_sum_kernel(float *__restrict__ map, const float *__restrict__ G, int S,
                                 int k) {
    int O = S + 1;
    size_t o3 = (size_t)O * O * O;
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (q >= o3) {
        return;
    }
    int ox = (int)(q % O), oy = (int)(q / O % O), oz = (int)(q / ((size_t)O * O));
    int pad = k / 2;
    size_t s3 = (size_t)S * S * S;
    const float *g = G + (size_t)p * k * k * k * s3;
    float sum = 0.0f;
    for (int tz = 0; tz < k; tz++) {
        int iz = oz - pad + tz;
        if (iz < 0 || iz >= S) {
            continue;
        }
        for (int ty = 0; ty < k; ty++) {
            int iy = oy - pad + ty;
            if (iy < 0 || iy >= S) {
                continue;
            }
            const float *row = g + (size_t)((tz * k + ty) * k) * s3 + ((size_t)iz * S + iy) * S;
            for (int tx = 0; tx < k; tx++) {
                int ix = ox - pad + tx;
                if (ix >= 0 && ix < S) {
                    sum += __ldg(row + (size_t)tx * s3 + ix);
                }
            }
        }
    }
    map[(size_t)p * o3 + q] = sum;
}

// ---- fuse and argmax ---------------------------------------------------------------------

struct FuseScale {
    const float *map; // point 0 of the chunk; point p at p * O^3
    int O;            // S + 1
    float inv;        // 1 / k^3
};

struct FuseArgs {
    FuseScale sc[MLK_SIM_MAX_SCALES];
    int nscales;
    int patch;
};

// lin is kernels.linearTable for one output index: torch's align_corners=false source index
// in float32, clamped at 0.
__device__ __forceinline__ void lin(int o, int in, int out, int &i0, int &i1, float &w0,
                                    float &w1) {
    float scale = __fdiv_rn((float)in, (float)out);
    float src = fmaxf(__fsub_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), 0.5f), 0.0f);
    int lo = (int)src;
    i0 = lo;
    i1 = lo < in - 1 ? lo + 1 : lo;
    float l = __fsub_rn(src, (float)lo);
    w0 = __fsub_rn(1.0f, l);
    w1 = l;
}

__device__ __forceinline__ float mad2(float wa, float a, float wb, float b) {
    return __fadd_rn(__fmul_rn(wa, a), __fmul_rn(wb, b));
}

__device__ __forceinline__ unsigned float_key(float v) {
    unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_float(unsigned k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// fuse_kernel computes the fused score of voxel q of point blockIdx.y (as kernels.fuseSlab)
// and folds it into keys[p]: the score's order key in the high word, ~q in the low word, so
// the largest key is the first maximum in C order. NaN scores are skipped; a key of 0 means
// the map held none but NaN.
__global__ void fuse_kernel(unsigned long long *keys, FuseArgs a) {
    int P = a.patch;
    size_t p3 = (size_t)P * P * P;
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    unsigned long long key = 0;
    if (q < p3) {
        int x = (int)(q % P), y = (int)(q / P % P), z = (int)(q / ((size_t)P * P));
        float sum = 0.0f;
        for (int s = 0; s < a.nscales; s++) {
            const FuseScale f = a.sc[s];
            int O = f.O;
            int z0, z1, y0, y1, x0, x1;
            float wz0, wz1, wy0, wy1, wx0, wx1;
            lin(z, O, P, z0, z1, wz0, wz1);
            lin(y, O, P, y0, y1, wy0, wy1);
            lin(x, O, P, x0, x1, wx0, wx1);
            wz0 = __fmul_rn(wz0, f.inv);
            wz1 = __fmul_rn(wz1, f.inv);
            const float *m = f.map + (size_t)p * O * O * O;
            const float *r00 = m + ((size_t)z0 * O + y0) * O;
            const float *r01 = m + ((size_t)z0 * O + y1) * O;
            const float *r10 = m + ((size_t)z1 * O + y0) * O;
            const float *r11 = m + ((size_t)z1 * O + y1) * O;
            float c0 = mad2(wy0, mad2(wx0, r00[x0], wx1, r00[x1]), wy1,
                            mad2(wx0, r01[x0], wx1, r01[x1]));
            float c1 = mad2(wy0, mad2(wx0, r10[x0], wx1, r10[x1]), wy1,
                            mad2(wx0, r11[x0], wx1, r11[x1]));
            sum = __fadd_rn(sum, mad2(wz0, c0, wz1, c1));
        }
        if (sum == sum) {
            if (sum == 0.0f) {
                sum = 0.0f; // -0 and +0 are one score
            }
            key = ((unsigned long long)float_key(sum) << 32) |
                  (unsigned long long)(0xffffffffu - (unsigned)q);
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        unsigned long long o = __shfl_down_sync(0xffffffffu, key, off);
        key = o > key ? o : key;
    }
    __shared__ unsigned long long warps[kThreads / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        warps[warp] = key;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < kThreads / 32; w++) {
            key = warps[w] > key ? warps[w] : key;
        }
        if (key != 0) {
            atomicMax(keys + p, key);
        }
    }
}

__global__ void decode_kernel(mlk_sim_result *out, const unsigned long long *keys, int n) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    unsigned long long key = keys[p];
    if (key == 0) {
        out[p].index = -1;
        out[p].score = __int_as_float(0x7fc00000);
        return;
    }
    out[p].index = (int)(0xffffffffu - (unsigned)(key & 0xffffffffu));
    out[p].score = key_float((unsigned)(key >> 32));
}

// ---- workspace and launchers -----------------------------------------------------------

struct Layout {
    size_t inv, g, maps[MLK_SIM_MAX_SCALES], keys, total;
};

// check validates the scales as kernels.NewSimilaritySearch does (sizes need not be
// multiples of 16 here); it returns NULL or a message.
const char *check(const mlk_sim_scale *sc, int n, int chunk) {
    if (sc == NULL || n < 1 || n > MLK_SIM_MAX_SCALES) {
        return "scales: need 1 to 8";
    }
    if (chunk < 1 || chunk > 65535) {
        return "chunk outside [1, 65535]";
    }
    for (int i = 0; i < n; i++) {
        if (sc[i].size < 1 || sc[i].size > kMaxSize) {
            return "scale size outside [1, 256]";
        }
        if (sc[i].kernel < 2 || sc[i].kernel % 2 != 0 || sc[i].kernel > sc[i].size ||
            sc[i].kernel > kMaxKernel) {
            return "scale kernel is not even in [2, min(size, 32)]";
        }
        if (sc[i].channels < 1 || sc[i].channels > kMaxChannels) {
            return "scale channels outside [1, 4096]";
        }
    }
    return NULL;
}

Layout layout(const mlk_sim_scale *sc, int n, int chunk) {
    Layout l = {};
    size_t maxS3 = 0, maxG = 0;
    for (int i = 0; i < n; i++) {
        size_t s = (size_t)sc[i].size, k = (size_t)sc[i].kernel;
        maxS3 = s * s * s > maxS3 ? s * s * s : maxS3;
        maxG = k * k * k * s * s * s > maxG ? k * k * k * s * s * s : maxG;
    }
    size_t off = 0;
    l.inv = off;
    off += align_up((size_t)chunk * maxS3 * sizeof(float));
    l.g = off;
    off += align_up((size_t)chunk * maxG * sizeof(float));
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)sc[i].size + 1;
        l.maps[i] = off;
        off += align_up((size_t)chunk * o * o * o * sizeof(float));
    }
    l.keys = off;
    off += align_up((size_t)chunk * sizeof(unsigned long long));
    l.total = off;
    return l;
}

// launch_chunk enqueues the search of n points starting at point p0.
cudaError_t launch_chunk(cudaStream_t s, const mlk_sim_scale *sc, int nscales, int patch,
                         const uint64_t *features, const uint64_t *kernels, int p0, int n,
                         char *ws, const Layout &l, mlk_sim_result *out) {
    float *inv = (float *)(ws + l.inv);
    float *G = (float *)(ws + l.g);
    FuseArgs fa = {};
    fa.nscales = nscales;
    fa.patch = patch;
    for (int i = 0; i < nscales; i++) {
        int S = sc[i].size, k = sc[i].kernel, C = sc[i].channels;
        int s3 = S * S * S, k3 = k * k * k;
        const float *F = (const float *)(uintptr_t)features[i] + (size_t)p0 * C * s3;
        const float *K = (const float *)(uintptr_t)kernels[i] + (size_t)p0 * C * k3;
        float *map = (float *)(ws + l.maps[i]);
        l2_inverse_kernel<<<dim3((s3 + kThreads - 1) / kThreads, n), kThreads, 0, s>>>(inv, F, C,
                                                                                      s3);
        dim3 gg((s3 + kBN - 1) / kBN, (k3 + kBM - 1) / kBM, n);
        corr_gemm_kernel<<<gg, kThreads, 0, s>>>(G, K, F, inv, k3, s3, C);
        size_t o3 = (size_t)(S + 1) * (S + 1) * (S + 1);
        shift_sum_kernel<<<dim3((unsigned)((o3 + kThreads - 1) / kThreads), n), kThreads, 0, s>>>(
            map, G, S, k);
        fa.sc[i].map = map;
        fa.sc[i].O = S + 1;
        fa.sc[i].inv = 1.0f / (float)k3; // k^3 is a power of two: exact
    }
    unsigned long long *keys = (unsigned long long *)(ws + l.keys);
    cudaError_t e = cudaMemsetAsync(keys, 0, (size_t)n * sizeof(*keys), s);
    if (e != cudaSuccess) {
        return e;
    }
    size_t p3 = (size_t)patch * patch * patch;
    fuse_kernel<<<dim3((unsigned)((p3 + kThreads - 1) / kThreads), n), kThreads, 0, s>>>(keys, fa);
    decode_kernel<<<(n + kThreads - 1) / kThreads, kThreads, 0, s>>>(out + p0, keys, n);
    return cudaGetLastError();
}

} // namespace

extern "C" size_t mlk_similarity_workspace(const mlk_sim_scale *scales, int nscales, int chunk) {
    if (check(scales, nscales, chunk) != NULL) {
        return 0;
    }
    return layout(scales, nscales, chunk).total;
}

extern "C" int mlk_similarity_search(int dev, mlk_stream s, const mlk_sim_scale *scales,
                                     int nscales, int patch, const uint64_t *features,
                                     const uint64_t *kernels, int points, int chunk,
                                     uint64_t workspace, size_t workspace_bytes, uint64_t out,
                                     mlk_status *st) {
    const char *bad = check(scales, nscales, chunk);
    if (bad != NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "similarity search: %s", bad);
    }
    if (patch < 2 || patch > kMaxPatch) {
        return mlk_set(st, MLK_EINVAL, 0, "similarity search: patch %d outside [2, %d]", patch,
                       kMaxPatch);
    }
    if (points < 1) {
        return mlk_set(st, MLK_EINVAL, 0, "similarity search: %d points", points);
    }
    if (features == NULL || kernels == NULL || workspace == 0 || out == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "similarity search: NULL features, kernels, "
                                          "workspace or out");
    }
    for (int i = 0; i < nscales; i++) {
        if (features[i] == 0 || kernels[i] == 0) {
            return mlk_set(st, MLK_EINVAL, 0, "similarity search: scale %d: NULL features or "
                                              "kernels", i);
        }
    }
    Layout l = layout(scales, nscales, chunk);
    if (workspace_bytes < l.total) {
        return mlk_set(st, MLK_EINVAL, 0,
                       "similarity search: workspace of %zu bytes, chunk %d needs %zu",
                       workspace_bytes, chunk, l.total);
    }
    int rc = mlk_enter(st, dev, s, "similarity search");
    if (rc != MLK_OK) {
        return rc;
    }
    for (int p0 = 0; p0 < points; p0 += chunk) {
        int n = points - p0 < chunk ? points - p0 : chunk;
        MLK_TRY(st, launch_chunk(mlk_cu(s), scales, nscales, patch, features, kernels, p0, n,
                                 (char *)(uintptr_t)workspace, l, (mlk_sim_result *)(uintptr_t)out));
    }
    return mlk_ok(st);
}
