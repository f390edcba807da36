// Multi-scale similarity search. Reference semantics: kernels/similarity.go
// (SimilaritySearch.Search): per scale, the query features are L2-normalised over channels
// (torch's F.normalize, norm floored at 1e-12), correlated with the point's kernel as the
// reference's grouped Conv3d with padding k/2 (an (S+1)^3 map), divided by k^3, resized to
// patch^3 trilinearly with align_corners false (torch's float32 source-index arithmetic),
// summed over scales in order; the result is the first maximum in C order.
//
// The correlation is the GEMM G = K^T * F (taps x voxels, reduced over channels) with its
// shift-sum fused in: corr_kernel is output-stationary, each thread accumulating 8 outputs
// of 4 planes over every tap and channel in registers while the block stages each input
// plane's window and taps in shared memory, so neither G (k^3 x S^3 floats per point, half a
// GiB at the finest MedLAM scale) nor any atomic is needed, and the sums do not depend on
// scheduling. The query voxels are normalised while staged, as the Go reference packs them.
// Summation orders differ from the Go reference, so scores agree to float32 rounding, not
// bit for bit.
//
// Expected speed (not measured yet; build/gpu-check.sh reports it): at the finest MedLAM
// scale (k = 8, 98 % of the FLOPs) a thread's inner step is, per channel and tap row, 15
// shared loads for its register window, then per output plane 8 broadcast tap loads and 64
// FMAs: about 0.2 shared loads per FMA, so the FMA pipes, not shared memory, bound it. With
// tile waste (65 = S+1 columns in tiles of 72, border zeros) and staging, about half of the
// FP32 peak is expected: some 25-35 TFLOP/s on an H100/H200 (67 TFLOP/s peak), counted as
// FLOPs() counts them (2 C k^3 S^3). Global traffic is (4+k-1)/4 reads of each input plane
// per tile, about 60 FLOPs per byte, above the H200's balance point of about 14.
//
// TODO(#5): TF32 tensor cores (mma.sync) would give several times more, at the cost of
// 10-bit mantissas in the products; whether the argmax survives that must be measured
// against the reference first. cuBLAS is not used: its static libraries would make the test
// binaries hundreds of MB.
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

// ---- correlation: an output-stationary tiled product with the shift-sum fused ----------

// Output tile of one block: ZB planes x TY rows x TX columns of the (S+1)^3 map, each thread
// owning 8 consecutive columns of one row in all ZB planes (ZB x 8 accumulators). TY and TX
// are chosen per scale by the host (TX a multiple of 8, at most 128; TY at most 16) so the
// tiles cover S+1 with little waste.
constexpr int kZB = 4, kTN = 8, kMaxTX = 128, kMaxTY = 16;
constexpr int kSmemFloats = 12288; // 48 KiB of dynamic shared memory, no opt-in needed

struct CorrGeom {
    int S, k, C, O, pad;
    int TY, TX, tilesX; // tile rows and columns, tiles along x
    int CB;             // channels staged at once
    int FH, FW;         // staged feature window: TY+k-1 rows, TX+k-1 columns
};

CorrGeom corr_geom(int S, int k, int C) {
    CorrGeom g;
    g.S = S;
    g.k = k;
    g.C = C;
    g.O = S + 1;
    g.pad = k / 2;
    g.tilesX = (g.O + kMaxTX - 1) / kMaxTX;
    int tx = (g.O + g.tilesX - 1) / g.tilesX;
    g.TX = (tx + kTN - 1) / kTN * kTN;
    int tilesY = (g.O + kMaxTY - 1) / kMaxTY;
    g.TY = (g.O + tilesY - 1) / tilesY;
    g.FH = g.TY + k - 1;
    g.FW = g.TX + k - 1;
    int per = g.FH * g.FW + kZB * k * k;
    g.CB = kSmemFloats / per;
    g.CB = g.CB < 1 ? 1 : (g.CB > C ? C : g.CB);
    return g;
}

int corr_tiles_y(const CorrGeom &g) { return (g.O + g.TY - 1) / g.TY; }

size_t corr_smem(const CorrGeom &g) {
    return (size_t)g.CB * (g.FH * g.FW + kZB * g.k * g.k) * sizeof(float);
}

// corr_kernel writes map[p][oz][oy][ox] for its tile: the reference's grouped Conv3d with
// padding k/2 (not yet divided by k^3), sum over taps t and channels c of
// K[c][t] * F[c][o - k/2 + t] * inv[o - k/2 + t], zero outside [0, S)^3. It walks the
// ZB + k - 1 input planes the tile's output planes read; for each it stages CB channels of
// the tile's input window (normalised) and the taps of those planes in shared memory, and
// every thread adds each tap's products straight into its accumulators: the products of the
// GEMM formulation are summed into their shifted outputs in registers and never stored.
// Each output is written once by one thread, in a fixed order: the result does not depend
// on scheduling. KT is the kernel edge when known at compile time (register windows), 0
// otherwise.
template <int KT>
__global__ void __launch_bounds__(kMaxTY *kMaxTX / kTN)
    corr_kernel(float *__restrict__ map, const float *__restrict__ K,
                const float *__restrict__ F, const float *__restrict__ inv, CorrGeom g) {
    extern __shared__ float smem[];
    const int k = KT > 0 ? KT : g.k;
    const int S = g.S, O = g.O, C = g.C, FH = g.FH, FW = g.FW;
    const size_t s3 = (size_t)S * S * S, k3 = (size_t)k * k * k, kk = (size_t)k * k;
    int p = blockIdx.z;
    F += (size_t)p * C * s3;
    K += (size_t)p * C * k3;
    inv += (size_t)p * s3;
    map += (size_t)p * O * O * O;
    int ox0 = (blockIdx.x % g.tilesX) * g.TX, oy0 = (blockIdx.x / g.tilesX) * g.TY;
    int oz0 = blockIdx.y * kZB;
    int threadsX = g.TX / kTN;
    int ry = threadIdx.x / threadsX, rx = (threadIdx.x % threadsX) * kTN;
    bool active = ry < g.TY;
    float *Fs = smem;                       // [CB][FH][FW]
    float *Ks = smem + (size_t)g.CB * FH * FW; // [ZB][CB][k][k]
    float acc[kZB][kTN];
#pragma unroll
    for (int z = 0; z < kZB; z++) {
#pragma unroll
        for (int j = 0; j < kTN; j++) {
            acc[z][j] = 0.0f;
        }
    }
    for (int izl = 0; izl < kZB + k - 1; izl++) {
        int iz = oz0 - g.pad + izl;
        if (iz < 0 || iz >= S) {
            continue; // zero padding: this plane adds nothing
        }
        for (int c0 = 0; c0 < C; c0 += g.CB) {
            int cb = C - c0 < g.CB ? C - c0 : g.CB;
            __syncthreads(); // the previous stage has been read
            int nf = cb * FH * FW;
            for (int e = threadIdx.x; e < nf; e += blockDim.x) {
                int c = e / (FH * FW), r = e / FW % FH, col = e % FW;
                int iy = oy0 - g.pad + r, ix = ox0 - g.pad + col;
                float v = 0.0f;
                if (iy >= 0 && iy < S && ix >= 0 && ix < S) {
                    size_t vox = ((size_t)iz * S + iy) * S + ix;
                    v = __fmul_rn(__ldg(F + (size_t)(c0 + c) * s3 + vox), __ldg(inv + vox));
                }
                Fs[e] = v;
            }
            int nk = kZB * cb * (int)kk;
            for (int e = threadIdx.x; e < nk; e += blockDim.x) {
                int zb = e / (cb * (int)kk), c = e / (int)kk % cb, t = e % (int)kk;
                int tz = izl - zb;
                Ks[((size_t)zb * g.CB + c) * kk + t] =
                    (tz >= 0 && tz < k) ? __ldg(K + (size_t)(c0 + c) * k3 + tz * kk + t) : 0.0f;
            }
            __syncthreads();
            if (!active) {
                continue;
            }
            for (int c = 0; c < cb; c++) {
                for (int ty = 0; ty < k; ty++) {
                    const float *row = Fs + ((size_t)c * FH + ry + ty) * FW + rx;
                    if (KT > 0) {
                        float win[kTN + (KT > 0 ? KT : 1) - 1];
#pragma unroll
                        for (int j = 0; j < kTN + KT - 1; j++) {
                            win[j] = row[j];
                        }
#pragma unroll
                        for (int zb = 0; zb < kZB; zb++) {
                            int tz = izl - zb;
                            if (tz < 0 || tz >= k) {
                                continue;
                            }
                            const float *kr = Ks + ((size_t)zb * g.CB + c) * kk + ty * k;
#pragma unroll
                            for (int tx = 0; tx < KT; tx++) {
                                float w = kr[tx];
#pragma unroll
                                for (int j = 0; j < kTN; j++) {
                                    acc[zb][j] = fmaf(w, win[j + tx], acc[zb][j]);
                                }
                            }
                        }
                    } else {
#pragma unroll
                        for (int zb = 0; zb < kZB; zb++) {
                            int tz = izl - zb;
                            if (tz < 0 || tz >= k) {
                                continue;
                            }
                            const float *kr = Ks + ((size_t)zb * g.CB + c) * kk + ty * k;
                            for (int tx = 0; tx < k; tx++) {
                                float w = kr[tx];
#pragma unroll
                                for (int j = 0; j < kTN; j++) {
                                    acc[zb][j] = fmaf(w, row[j + tx], acc[zb][j]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    int oy = oy0 + ry;
    if (!active || oy >= O) {
        return;
    }
#pragma unroll
    for (int zb = 0; zb < kZB; zb++) {
        int oz = oz0 + zb;
        if (oz >= O) {
            continue;
        }
        float *out = map + ((size_t)oz * O + oy) * O;
#pragma unroll
        for (int j = 0; j < kTN; j++) {
            int ox = ox0 + rx + j;
            if (ox < O && ox < ox0 + g.TX) {
                out[ox] = acc[zb][j];
            }
        }
    }
}

cudaError_t launch_corr(cudaStream_t s, float *map, const float *K, const float *F,
                        const float *inv, int S, int k, int C, int n) {
    CorrGeom g = corr_geom(S, k, C);
    dim3 grid(g.tilesX * corr_tiles_y(g), (g.O + kZB - 1) / kZB, n);
    int threads = g.TY * (g.TX / kTN);
    size_t smem = corr_smem(g);
    switch (k) {
    case 2:
        corr_kernel<2><<<grid, threads, smem, s>>>(map, K, F, inv, g);
        break;
    case 4:
        corr_kernel<4><<<grid, threads, smem, s>>>(map, K, F, inv, g);
        break;
    case 8:
        corr_kernel<8><<<grid, threads, smem, s>>>(map, K, F, inv, g);
        break;
    default:
        corr_kernel<0><<<grid, threads, smem, s>>>(map, K, F, inv, g);
    }
    return cudaGetLastError();
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
    size_t inv, maps[MLK_SIM_MAX_SCALES], keys, total;
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
    size_t maxS3 = 0;
    for (int i = 0; i < n; i++) {
        size_t s = (size_t)sc[i].size;
        maxS3 = s * s * s > maxS3 ? s * s * s : maxS3;
    }
    size_t off = 0;
    l.inv = off;
    off += align_up((size_t)chunk * maxS3 * sizeof(float));
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
        cudaError_t e = launch_corr(s, map, K, F, inv, S, k, C, n);
        if (e != cudaSuccess) {
            return e;
        }
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

extern "C" int mlk_similarity_search_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                           const mlk_copy *out_copies, int nout,
                                           const mlk_sim_scale *scales, int nscales, int patch,
                                           const uint64_t *features, const uint64_t *kernels,
                                           int points, int chunk, uint64_t workspace,
                                           size_t workspace_bytes, uint64_t out,
                                           mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "similarity search batch");
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = mlk_similarity_search(dev, s, scales, nscales, patch, features, kernels, points,
                                   chunk, workspace, workspace_bytes, out, st);
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out_copies, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}
