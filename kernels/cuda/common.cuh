// Shared declarations of the medlsam-fast CUDA kernels: the status every exported entry
// fills, and (for the .cu files only) the helpers that fill it.
//
// The C part of this header is plain C99 so that cgo can include it: device pointers cross
// the boundary as 64-bit integers, streams and events as opaque pointers. No entry keeps a
// pointer it was given after it returns, except the device and pinned addresses that the
// caller owns and the stream work it enqueued. Nothing here calls exit or abort.
#ifndef MEDLSAM_COMMON_CUH
#define MEDLSAM_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Status codes of every mlk_ entry. Mirrored by the Go package kernels/gpu.
enum {
    MLK_OK = 0,
    MLK_EINVAL = 1, // bad argument: shape, size, null pointer or stream
    MLK_ENOMEM = 2, // out of device or pinned host memory
    MLK_ENODEV = 3, // no CUDA-capable device, or the driver is missing or too old
    MLK_ECUDA = 4,  // any other CUDA runtime error (its code is in mlk_status.cuda)
};

#define MLK_MSG_LEN 256

// mlk_status is filled by every entry: code as returned, the CUDA runtime error code when
// one caused it (else 0), and a NUL-terminated message. The caller owns it; it may be NULL.
typedef struct {
    int code;
    int cuda;
    char msg[MLK_MSG_LEN];
} mlk_status;

// Opaque handles of a cudaStream_t and a cudaEvent_t.
typedef struct mlk_stream_s *mlk_stream;
typedef struct mlk_event_s *mlk_event;

// mlk_copy is one copy of a batch entry (the mlk_*_batch functions): bytes between pinned
// host memory (from mlk_host_alloc) and a device address. A batch entry enqueues its copies
// in (host to device), then its kernels, then its copies out (device to host), all on its
// stream, and waits for the stream before returning when it has copies out, so that one
// native call moves and processes a whole batch.
typedef struct {
    void *host;
    uint64_t dev;
    size_t bytes;
} mlk_copy;

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>

// mlk_set fills st (when not NULL) and returns code.
static inline int mlk_set(mlk_status *st, int code, int cuda, const char *fmt, ...) {
    if (st != NULL) {
        st->code = code;
        st->cuda = cuda;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, MLK_MSG_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

static inline int mlk_ok(mlk_status *st) {
    if (st != NULL) {
        st->code = MLK_OK;
        st->cuda = 0;
        st->msg[0] = '\0';
    }
    return MLK_OK;
}

// mlk_cuda turns a CUDA runtime result into a status; what names the failed step. The
// sticky error state is cleared with cudaGetLastError so a later entry starts clean.
static inline int mlk_cuda(mlk_status *st, cudaError_t e, const char *what) {
    if (e == cudaSuccess) {
        return MLK_OK;
    }
    (void)cudaGetLastError();
    int code = MLK_ECUDA;
    if (e == cudaErrorMemoryAllocation) {
        code = MLK_ENOMEM;
    } else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
               e == cudaErrorInvalidDevice) {
        code = MLK_ENODEV;
    }
    return mlk_set(st, code, (int)e, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define MLK_TRY(st, call)                                                                      \
    do {                                                                                       \
        int mlk_rc_ = mlk_cuda((st), (call), #call);                                           \
        if (mlk_rc_ != MLK_OK) {                                                               \
            return mlk_rc_;                                                                    \
        }                                                                                      \
    } while (0)

// mlk_enter sets the device of an entry and checks its stream: no entry uses the legacy
// default stream.
static inline int mlk_enter(mlk_status *st, int dev, mlk_stream s, const char *op) {
    if (s == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: stream is NULL (the default stream is not used)", op);
    }
    return mlk_cuda(st, cudaSetDevice(dev), "cudaSetDevice");
}

static inline cudaStream_t mlk_cu(mlk_stream s) { return (cudaStream_t)s; }

// mlk_copies enqueues n copies on s, host to device (in != 0) or device to host.
static inline int mlk_copies(mlk_status *st, cudaStream_t s, const mlk_copy *c, int n, int in) {
    if (n < 0 || (n > 0 && c == NULL)) {
        return mlk_set(st, MLK_EINVAL, 0, "batch: %d copies from a NULL list", n);
    }
    for (int i = 0; i < n; i++) {
        if (c[i].bytes == 0) {
            continue;
        }
        if (c[i].host == NULL || c[i].dev == 0) {
            return mlk_set(st, MLK_EINVAL, 0, "batch: copy %s %d has a NULL address",
                           in ? "in" : "out", i);
        }
        void *d = (void *)(uintptr_t)c[i].dev;
        cudaError_t e = in ? cudaMemcpyAsync(d, c[i].host, c[i].bytes, cudaMemcpyHostToDevice, s)
                           : cudaMemcpyAsync(c[i].host, d, c[i].bytes, cudaMemcpyDeviceToHost, s);
        int rc = mlk_cuda(st, e, in ? "batch copy in" : "batch copy out");
        if (rc != MLK_OK) {
            return rc;
        }
    }
    return MLK_OK;
}

// mlk_batch_out enqueues the copies out and, when there are any, waits for the stream.
static inline int mlk_batch_out(mlk_status *st, cudaStream_t s, const mlk_copy *out, int nout) {
    int rc = mlk_copies(st, s, out, nout, 0);
    if (rc != MLK_OK || nout == 0) {
        return rc;
    }
    return mlk_cuda(st, cudaStreamSynchronize(s), "batch stream sync");
}

// mlk_batch_abort waits for the stream after a failure inside a batch entry, so that the
// caller may reuse the pinned buffers of copies already enqueued, and returns rc.
static inline int mlk_batch_abort(cudaStream_t s, int rc) {
    (void)cudaStreamSynchronize(s);
    (void)cudaGetLastError();
    return rc;
}

// mlk_batch runs op, an int() callable that enqueues work on s, between the copies in and
// out of a batch entry named name: the device set, the copies in, op, the copies out and the
// wait for them, or, after a failure, the wait that lets the caller reuse its pinned buffers.
template <typename Op>
static inline int mlk_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                            const mlk_copy *out, int nout, const char *name, mlk_status *st,
                            Op op) {
    int rc = mlk_enter(st, dev, s, name);
    if (rc != MLK_OK) {
        return rc;
    }
    rc = mlk_copies(st, mlk_cu(s), in, nin, 1);
    if (rc == MLK_OK) {
        rc = op();
    }
    if (rc == MLK_OK) {
        rc = mlk_batch_out(st, mlk_cu(s), out, nout);
    }
    if (rc != MLK_OK) {
        return mlk_batch_abort(mlk_cu(s), rc);
    }
    return mlk_ok(st);
}

// mlk_blocks returns the number of blocks of threads covering n items, capped for grid-stride
// loops.
static inline unsigned mlk_blocks(size_t n, unsigned threads, unsigned cap) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1) {
        b = 1;
    }
    return (unsigned)(b < cap ? b : cap);
}
#endif // __CUDACC__

#endif // MEDLSAM_COMMON_CUH
