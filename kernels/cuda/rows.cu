// Row gather (rows.cuh). 16-byte loads and stores where the row size and the addresses
// allow, 4-byte ones otherwise; a block-row grid: blockIdx.y picks the row.
#include "rows.cuh"

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void gather_rows_kernel(T *__restrict__ dst, const T *__restrict__ src,
                                   size_t row_elems, int src_rows,
                                   const int *__restrict__ idx) {
    int r = blockIdx.y;
    int from = __ldg(idx + r);
    if (from < 0 || from >= src_rows) {
        return;
    }
    const T *in = src + (size_t)from * row_elems;
    T *out = dst + (size_t)r * row_elems;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < row_elems;
         i += (size_t)gridDim.x * blockDim.x) {
        out[i] = __ldg(in + i);
    }
}

cudaError_t launch_gather_rows(cudaStream_t s, void *dst, const void *src, size_t row_bytes,
                               int src_rows, const int *idx, int n) {
    bool wide = row_bytes % 16 == 0 && (uintptr_t)dst % 16 == 0 && (uintptr_t)src % 16 == 0;
    size_t elems = wide ? row_bytes / 16 : row_bytes / 4;
    unsigned bx = mlk_blocks(elems, kThreads, 1024);
    dim3 grid(bx, (unsigned)n);
    if (wide) {
        gather_rows_kernel<float4><<<grid, kThreads, 0, s>>>(
            (float4 *)dst, (const float4 *)src, elems, src_rows, idx);
    } else {
        gather_rows_kernel<float><<<grid, kThreads, 0, s>>>(
            (float *)dst, (const float *)src, elems, src_rows, idx);
    }
    return cudaGetLastError();
}

} // namespace

extern "C" int mlk_gather_rows(int dev, mlk_stream s, uint64_t dst, uint64_t src,
                               size_t row_bytes, int src_rows, uint64_t idx, int n,
                               mlk_status *st) {
    const char *op = "gather rows";
    if (n < 1 || n > 65535 || src_rows < 1 || row_bytes == 0 || row_bytes % 4 != 0) {
        return mlk_set(st, MLK_EINVAL, 0,
                       "%s: %d rows of %zu bytes from %d (1..65535 rows, a multiple of 4 bytes)",
                       op, n, row_bytes, src_rows);
    }
    if (dst == 0 || src == 0 || idx == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL dst, src or indices", op);
    }
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, launch_gather_rows(mlk_cu(s), (void *)(uintptr_t)dst, (const void *)(uintptr_t)src,
                                   row_bytes, src_rows, (const int *)(uintptr_t)idx, n));
    return mlk_ok(st);
}
