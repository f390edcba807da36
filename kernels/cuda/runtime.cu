// Runtime plumbing: thin, checked wrappers of the CUDA runtime (see runtime.cuh).
#include "runtime.cuh"

#include <string.h>

extern "C" int mlk_device_count(int *n, mlk_status *st) {
    if (n == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "device count: n is NULL");
    }
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        *n = 0;
        return mlk_cuda(st, e, "cudaGetDeviceCount");
    }
    return mlk_ok(st);
}

extern "C" int mlk_device_info_get(int dev, mlk_device_info *out, mlk_status *st) {
    if (out == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "device info: out is NULL");
    }
    memset(out, 0, sizeof(*out));
    MLK_TRY(st, cudaSetDevice(dev));
    cudaDeviceProp p;
    MLK_TRY(st, cudaGetDeviceProperties(&p, dev));
    snprintf(out->name, sizeof(out->name), "%s", p.name);
    out->major = p.major;
    out->minor = p.minor;
    out->multiprocessors = p.multiProcessorCount;
    out->total_memory = p.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    MLK_TRY(st, cudaMemGetInfo(&free_b, &total_b));
    out->free_memory = free_b;
    MLK_TRY(st, cudaRuntimeGetVersion(&out->runtime_version));
    MLK_TRY(st, cudaDriverGetVersion(&out->driver_version));
    return mlk_ok(st);
}

extern "C" int mlk_runtime_version(int *v, mlk_status *st) {
    if (v == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "runtime version: v is NULL");
    }
    // The statically linked runtime is the one of the headers: CUDART_VERSION. Asking the
    // runtime (cudaRuntimeGetVersion) would fail without a device (error 100).
    *v = CUDART_VERSION;
    return mlk_ok(st);
}

extern "C" int mlk_device_malloc(int dev, size_t bytes, uint64_t *out, mlk_status *st) {
    if (out == NULL || bytes == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "device malloc: out is NULL or bytes is 0");
    }
    *out = 0;
    MLK_TRY(st, cudaSetDevice(dev));
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        int code = e == cudaErrorMemoryAllocation ? MLK_ENOMEM : MLK_ECUDA;
        return mlk_set(st, code, (int)e, "cudaMalloc of %zu bytes on device %d: %s", bytes, dev,
                       cudaGetErrorString(e));
    }
    *out = (uint64_t)(uintptr_t)p;
    return mlk_ok(st);
}

extern "C" int mlk_device_free(int dev, uint64_t ptr, mlk_status *st) {
    if (ptr == 0) {
        return mlk_ok(st);
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaFree((void *)(uintptr_t)ptr));
    return mlk_ok(st);
}

extern "C" int mlk_host_alloc(int dev, size_t bytes, void **out, mlk_status *st) {
    if (out == NULL || bytes == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "host alloc: out is NULL or bytes is 0");
    }
    *out = NULL;
    MLK_TRY(st, cudaSetDevice(dev));
    cudaError_t e = cudaHostAlloc(out, bytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        *out = NULL;
        int code = e == cudaErrorMemoryAllocation ? MLK_ENOMEM : MLK_ECUDA;
        (void)cudaGetLastError();
        return mlk_set(st, code, (int)e, "cudaHostAlloc of %zu pinned bytes: %s", bytes,
                       cudaGetErrorString(e));
    }
    return mlk_ok(st);
}

extern "C" int mlk_host_free(int dev, void *ptr, mlk_status *st) {
    if (ptr == NULL) {
        return mlk_ok(st);
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaFreeHost(ptr));
    return mlk_ok(st);
}

extern "C" int mlk_stream_create(int dev, mlk_stream *out, mlk_status *st) {
    if (out == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "stream create: out is NULL");
    }
    *out = NULL;
    MLK_TRY(st, cudaSetDevice(dev));
    cudaStream_t s = NULL;
    MLK_TRY(st, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *out = (mlk_stream)s;
    return mlk_ok(st);
}

extern "C" int mlk_stream_destroy(int dev, mlk_stream s, mlk_status *st) {
    if (s == NULL) {
        return mlk_ok(st);
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaStreamDestroy(mlk_cu(s)));
    return mlk_ok(st);
}

extern "C" int mlk_stream_sync(int dev, mlk_stream s, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "stream sync");
    if (rc != MLK_OK) {
        return rc;
    }
    MLK_TRY(st, cudaStreamSynchronize(mlk_cu(s)));
    return mlk_ok(st);
}

extern "C" int mlk_event_create(int dev, mlk_event *out, mlk_status *st) {
    if (out == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "event create: out is NULL");
    }
    *out = NULL;
    MLK_TRY(st, cudaSetDevice(dev));
    cudaEvent_t e = NULL;
    MLK_TRY(st, cudaEventCreate(&e));
    *out = (mlk_event)e;
    return mlk_ok(st);
}

extern "C" int mlk_event_destroy(int dev, mlk_event e, mlk_status *st) {
    if (e == NULL) {
        return mlk_ok(st);
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaEventDestroy((cudaEvent_t)e));
    return mlk_ok(st);
}

extern "C" int mlk_event_record(int dev, mlk_event e, mlk_stream s, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "event record");
    if (rc != MLK_OK) {
        return rc;
    }
    if (e == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "event record: event is NULL");
    }
    MLK_TRY(st, cudaEventRecord((cudaEvent_t)e, mlk_cu(s)));
    return mlk_ok(st);
}

extern "C" int mlk_event_sync(int dev, mlk_event e, mlk_status *st) {
    if (e == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "event sync: event is NULL");
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaEventSynchronize((cudaEvent_t)e));
    return mlk_ok(st);
}

extern "C" int mlk_event_elapsed(int dev, mlk_event start, mlk_event stop, float *ms,
                                 mlk_status *st) {
    if (start == NULL || stop == NULL || ms == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "event elapsed: NULL event or result");
    }
    MLK_TRY(st, cudaSetDevice(dev));
    MLK_TRY(st, cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)stop));
    return mlk_ok(st);
}

static int mlk_copy_async(int dev, mlk_stream s, void *dst, const void *src, size_t bytes,
                    cudaMemcpyKind kind, const char *op, mlk_status *st) {
    int rc = mlk_enter(st, dev, s, op);
    if (rc != MLK_OK) {
        return rc;
    }
    if (bytes == 0) {
        return mlk_ok(st);
    }
    if (dst == NULL || src == NULL) {
        return mlk_set(st, MLK_EINVAL, 0, "%s: NULL source or destination", op);
    }
    MLK_TRY(st, cudaMemcpyAsync(dst, src, bytes, kind, mlk_cu(s)));
    return mlk_ok(st);
}

extern "C" int mlk_memcpy_htod(int dev, mlk_stream s, uint64_t dst, const void *src,
                               size_t bytes, mlk_status *st) {
    return mlk_copy_async(dev, s, (void *)(uintptr_t)dst, src, bytes, cudaMemcpyHostToDevice,
                    "memcpy host to device", st);
}

extern "C" int mlk_memcpy_dtoh(int dev, mlk_stream s, void *dst, uint64_t src, size_t bytes,
                               mlk_status *st) {
    return mlk_copy_async(dev, s, dst, (const void *)(uintptr_t)src, bytes, cudaMemcpyDeviceToHost,
                    "memcpy device to host", st);
}

extern "C" int mlk_memcpy_dtod(int dev, mlk_stream s, uint64_t dst, uint64_t src, size_t bytes,
                               mlk_status *st) {
    return mlk_copy_async(dev, s, (void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes,
                    cudaMemcpyDeviceToDevice, "memcpy device to device", st);
}

extern "C" int mlk_memset(int dev, mlk_stream s, uint64_t dst, int value, size_t bytes,
                          mlk_status *st) {
    int rc = mlk_enter(st, dev, s, "memset");
    if (rc != MLK_OK) {
        return rc;
    }
    if (bytes == 0) {
        return mlk_ok(st);
    }
    if (dst == 0) {
        return mlk_set(st, MLK_EINVAL, 0, "memset: NULL destination");
    }
    MLK_TRY(st, cudaMemsetAsync((void *)(uintptr_t)dst, value, bytes, mlk_cu(s)));
    return mlk_ok(st);
}
