// Patch kernels. Reference semantics: engine/volume's permute (Reorientation.Apply) and
// kernels/patch.go (CropPatches, Gather). They move values without arithmetic, so the
// results equal the Go reference bit for bit.
#include "patch.cuh"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 65535u * 4;

// Output voxel o = i + ox*(j + oy*k) reads src[base + i*s0 + j*s1 + k*s2]; a flipped axis
// has a negative stride and base starts at its far end.
__global__ void reorient_kernel(float *__restrict__ dst, const float *__restrict__ src,
                                int ox, int oy, size_t n, long long base, long long s0,
                                long long s1, long long s2) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t o = (size_t)blockIdx.x * blockDim.x + threadIdx.x; o < n; o += stride) {
        long long i = (long long)(o % (size_t)ox);
        size_t r = o / (size_t)ox;
        long long j = (long long)(r % (size_t)oy);
        long long k = (long long)(r / (size_t)oy);
        dst[o] = __ldg(src + (base + i * s0 + j * s1 + k * s2));
    }
}

// One thread per patch voxel, x fastest so that a warp reads a row of the grid.
__global__ void crop_kernel(float *__restrict__ dst, const float *__restrict__ grid, int dz,
                            int dy, int dx, const int *__restrict__ centres, int offset,
                            int edge, size_t n) {
    size_t vox = (size_t)edge * edge * edge;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += stride) {
        size_t p = t / vox, r = t % vox;
        int c = (int)(r % (size_t)edge);
        int b = (int)((r / (size_t)edge) % (size_t)edge);
        int a = (int)(r / ((size_t)edge * edge));
        int z = __ldg(centres + 3 * p) - offset + a;
        int y = __ldg(centres + 3 * p + 1) - offset + b;
        int x = __ldg(centres + 3 * p + 2) - offset + c;
        float v = 0.0f;
        if (z >= 0 && z < dz && y >= 0 && y < dy && x >= 0 && x < dx) {
            v = __ldg(grid + ((size_t)z * dy + y) * dx + x);
        }
        dst[t] = v;
    }
}

__global__ void gather_kernel(float *__restrict__ dst, const float *__restrict__ grid, int dz,
                              int dy, int dx, const int *__restrict__ points, int offset,
                              int n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)n;
         i += (size_t)gridDim.x * blockDim.x) {
        int z = points[3 * i] - offset, y = points[3 * i + 1] - offset,
            x = points[3 * i + 2] - offset;
        float v = 0.0f;
        if (z >= 0 && z < dz && y >= 0 && y < dy && x >= 0 && x < dx) {
            v = grid[((size_t)z * dy + y) * dx + x];
        }
        dst[i] = v;
    }
}

cudaError_t launch_reorient(cudaStream_t s, float *dst, const float *src, int ox, int oy,
                            size_t n, long long base, const long long stride[3]) {
    reorient_kernel<<<mlk_blocks(n, kThreads, kMaxBlocks), kThreads, 0, s>>>(
        dst, src, ox, oy, n, base, stride[0], stride[1], stride[2]);
    return cudaGetLastError();
}

cudaError_t launch_crop(cudaStream_t s, float *dst, const float *grid, int dz, int dy, int dx,
                        const int *centres, int n, int offset, int edge) {
    size_t total = (size_t)n * edge * edge * edge;
    crop_kernel<<<mlk_blocks(total, kThreads, kMaxBlocks), kThreads, 0, s>>>(
        dst, grid, dz, dy, dx, centres, offset, edge, total);
    return cudaGetLastError();
}

cudaError_t launch_gather(cudaStream_t s, float *dst, const float *grid, int dz, int dy, int dx,
                          const int *points, int n, int offset) {
    gather_kernel<<<mlk_blocks((size_t)n, kThreads, kMaxBlocks), kThreads, 0, s>>>(
        dst, grid, dz, dy, dx, points, offset, n);
    return cudaGetLastError();
}

int check_extent(mlk_status *st, const char *op, const char *what, int a, int b, int c) {
    if (a <= 0 || b <= 0 || c <= 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: %s [%d %d %d] must be positive", op, what, a, b,
                       c);
    }
    return MLK_OK;
}

} // namespace

extern "C" int mlk_reorient(int dev, mlk_stream s, uint64_t dst, uint64_t src, int nx, int ny,
                            int nz, const int perm[3], const int flip[3], mlk_status *st) {
    const char *op = "reorient";
    int rc = check_extent(st, op, "src shape", nx, ny, nz);
    if (rc != MLK_OK) {
        return rc;
    }
    if (perm == NULL || flip == NULL || dst == 0 || src == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL permutation, flips, dst or src", op);
    }
    int seen = 0;
    for (int a = 0; a < 3; a++) {
        if (perm[a] < 0 || perm[a] > 2 || (seen & (1 << perm[a]))) {
            return mlk_set(st, MLK_EINVAL, 0, "%s: [%d %d %d] is not a permutation of the axes",
                           op, perm[0], perm[1], perm[2]);
        }
        seen |= 1 << perm[a];
    }
    long long shape[3] = {nx, ny, nz};
    long long in_stride[3] = {1, (long long)nx, (long long)nx * ny};
    long long stride[3], base = 0;
    for (int a = 0; a < 3; a++) {
        stride[a] = in_stride[perm[a]];
        if (flip[a]) {
            base += (shape[perm[a]] - 1) * in_stride[perm[a]];
            stride[a] = -stride[a];
        }
    }
    size_t n = (size_t)nx * ny * nz;
    rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_reorient(mlk_cu(s), (float *)(uintptr_t)dst, (const float *)(uintptr_t)src,
                                (int)shape[perm[0]], (int)shape[perm[1]], n, base, stride));
    return mlk_ok(st);
}

extern "C" int mlk_crop_patches(int dev, mlk_stream s, uint64_t dst, uint64_t grid, int dz,
                                int dy, int dx, uint64_t centres, int n, int offset, int edge,
                                mlk_status *st) {
    const char *op = "crop patches";
    int rc = check_extent(st, op, "grid extent", dz, dy, dx);
    if (rc != MLK_OK) {
        return rc;
    }
    if (n < 1 || edge < 1 || edge > 1024) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: %d patches of edge %d", op, n, edge);
    }
    if (dst == 0 || grid == 0 || centres == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL dst, grid or centres", op);
    }
    rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_crop(mlk_cu(s), (float *)(uintptr_t)dst, (const float *)(uintptr_t)grid, dz,
                            dy, dx, (const int *)(uintptr_t)centres, n, offset, edge));
    return mlk_ok(st);
}

extern "C" int mlk_gather(int dev, mlk_stream s, uint64_t dst, uint64_t grid, int dz, int dy,
                          int dx, uint64_t points, int n, int offset, mlk_status *st) {
    const char *op = "gather";
    int rc = check_extent(st, op, "grid extent", dz, dy, dx);
    if (rc != MLK_OK) {
        return rc;
    }
    if (n < 1 || dst == 0 || grid == 0 || points == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: %d points, or a NULL dst, grid or points", op,
                       n);
    }
    rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_gather(mlk_cu(s), (float *)(uintptr_t)dst, (const float *)(uintptr_t)grid,
                              dz, dy, dx, (const int *)(uintptr_t)points, n, offset));
    return mlk_ok(st);
}

extern "C" int mlk_reorient_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                  const mlk_copy *out_copies, int nout, uint64_t dst,
                                  uint64_t src, int nx, int ny, int nz, const int perm[3],
                                  const int flip[3], mlk_status *st) {
    return mlk_batch(dev, s, in, nin, out_copies, nout, "reorient batch", st, [&] {
        return mlk_reorient(dev, s, dst, src, nx, ny, nz, perm, flip, st);
    });
}

extern "C" int mlk_crop_patches_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                      const mlk_copy *out_copies, int nout, uint64_t dst,
                                      uint64_t grid, int dz, int dy, int dx, uint64_t centres,
                                      int n, int offset, int edge, mlk_status *st) {
    return mlk_batch(dev, s, in, nin, out_copies, nout, "crop patches batch", st, [&] {
        return mlk_crop_patches(dev, s, dst, grid, dz, dy, dx, centres, n, offset, edge, st);
    });
}

extern "C" int mlk_gather_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                const mlk_copy *out_copies, int nout, uint64_t dst,
                                uint64_t grid, int dz, int dy, int dx, uint64_t points, int n,
                                int offset, mlk_status *st) {
    return mlk_batch(dev, s, in, nin, out_copies, nout, "gather batch", st, [&] {
        return mlk_gather(dev, s, dst, grid, dz, dy, dx, points, n, offset, st);
    });
}
