// Runtime plumbing of the medlsam-fast kernels: devices, device and pinned host memory,
// streams, events and asynchronous copies. Every entry sets its device first and returns an
// MLK_ status code (see common.cuh). Device addresses travel as uint64_t.
#ifndef MEDLSAM_RUNTIME_CUH
#define MEDLSAM_RUNTIME_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[256];
    int major, minor;      // compute capability
    int multiprocessors;
    size_t total_memory;   // bytes
    size_t free_memory;    // bytes, at the time of the call
    int runtime_version;   // of the statically linked runtime, e.g. 11080
    int driver_version;    // CUDA version the driver supports, e.g. 13000
} mlk_device_info;

// mlk_device_count stores the number of CUDA devices in *n. Without a device it returns
// MLK_ENODEV with the runtime's error (100 with no device, 35 with a driver that is too old).
int mlk_device_count(int *n, mlk_status *st);
int mlk_device_info_get(int dev, mlk_device_info *out, mlk_status *st);
// mlk_runtime_version stores in *v the version of the CUDA runtime linked in (e.g. 11080 for
// 11.8): CUDART_VERSION of the headers it was compiled with, the runtime linked statically.
// It touches no device, so it works on machines without a GPU.
int mlk_runtime_version(int *v, mlk_status *st);

// Device memory: cudaMalloc and cudaFree. mlk_device_free of 0 does nothing.
int mlk_device_malloc(int dev, size_t bytes, uint64_t *out, mlk_status *st);
int mlk_device_free(int dev, uint64_t ptr, mlk_status *st);

// Pinned host memory (cudaHostAlloc, portable): the only host memory the copies below take.
int mlk_host_alloc(int dev, size_t bytes, void **out, mlk_status *st);
int mlk_host_free(int dev, void *ptr, mlk_status *st);

// Streams are created non-blocking with respect to the legacy default stream.
int mlk_stream_create(int dev, mlk_stream *out, mlk_status *st);
int mlk_stream_destroy(int dev, mlk_stream s, mlk_status *st);
int mlk_stream_sync(int dev, mlk_stream s, mlk_status *st);

int mlk_event_create(int dev, mlk_event *out, mlk_status *st);
int mlk_event_destroy(int dev, mlk_event e, mlk_status *st);
int mlk_event_record(int dev, mlk_event e, mlk_stream s, mlk_status *st);
int mlk_event_sync(int dev, mlk_event e, mlk_status *st);
// mlk_event_elapsed stores in *ms the time between two completed events.
int mlk_event_elapsed(int dev, mlk_event start, mlk_event stop, float *ms, mlk_status *st);

// Asynchronous copies on stream s. Host pointers must come from mlk_host_alloc and stay
// valid until the stream has passed the copy.
int mlk_memcpy_htod(int dev, mlk_stream s, uint64_t dst, const void *src, size_t bytes,
                    mlk_status *st);
int mlk_memcpy_dtoh(int dev, mlk_stream s, void *dst, uint64_t src, size_t bytes,
                    mlk_status *st);
int mlk_memcpy_dtod(int dev, mlk_stream s, uint64_t dst, uint64_t src, size_t bytes,
                    mlk_status *st);
int mlk_memset(int dev, mlk_stream s, uint64_t dst, int value, size_t bytes, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_RUNTIME_CUH
