/*
 * shim.h: the C interface of the TensorRT shim (trt/shim.cpp), the only code of medlsam-fast
 * that calls TensorRT's C++ API. Everything else (profile choice, shape checks, error
 * translation, manifests) lives in Go (package trt).
 *
 * Handles are opaque. Every function that can fail returns an mt_status code and, when it is
 * not MT_OK, writes a NUL-terminated message into err (at most errlen bytes, caller-owned;
 * the shim never keeps err). Nothing here throws, exits or aborts.
 *
 * Streams are cudaStream_t passed as void*; device pointers are owned by the caller and must
 * outlive every enqueue that uses them. This header includes no TensorRT or CUDA header so
 * that cgo compiles against it without either.
 */
#ifndef MEDLSAM_TRT_SHIM_H
#define MEDLSAM_TRT_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes; package trt maps them to Go errors (errors.go). */
enum {
    MT_OK = 0,
    MT_ERR_TRT = 1,       /* TensorRT returned false or null; err holds its last message */
    MT_ERR_EXCEPTION = 2, /* a C++ exception was caught */
    MT_ERR_NOMEM = 3,     /* std::bad_alloc, or TensorRT reported an allocation failure */
    MT_ERR_ARG = 4,       /* a null handle, a bad index or an over-long shape */
};

/* The most dimensions a tensor may have (nvinfer1::Dims::MAX_DIMS is 8 in 10.x and 11.x). */
#define MT_MAX_DIMS 8

typedef struct mt_runtime mt_runtime;
typedef struct mt_engine mt_engine;
typedef struct mt_context mt_context;

/* mt_log_fn receives every TensorRT log record: severity is nvinfer1::ILogger::Severity
 * (0 internal error, 1 error, 2 warning, 3 info, 4 verbose). It may be called from any
 * thread, including threads TensorRT owns; msg is valid only during the call. */
typedef void (*mt_log_fn)(int32_t severity, char const* msg);

/* mt_set_logger installs the process-wide log callback (NULL drops records). Call it before
 * mt_runtime_create. */
void mt_set_logger(mt_log_fn fn);

/* Versions: the TensorRT headers the shim was compiled with, and the library loaded at run
 * time (getInferLibMajorVersion and friends, present in 10.x and 11.x). */
void mt_header_version(int32_t* major, int32_t* minor, int32_t* patch);
void mt_library_version(int32_t* major, int32_t* minor, int32_t* patch);

int32_t mt_runtime_create(mt_runtime** out, char* err, size_t errlen);
void mt_runtime_destroy(mt_runtime* rt);

/* mt_engine_deserialize builds an engine from a serialised plan. TensorRT copies what it
 * needs; plan may be freed when the call returns. */
int32_t mt_engine_deserialize(mt_runtime* rt, void const* plan, size_t size, mt_engine** out,
                              char* err, size_t errlen);
void mt_engine_destroy(mt_engine* e);

int32_t mt_engine_num_io(mt_engine* e);
/* mt_engine_io describes I/O tensor i: its name (valid while the engine lives), mode
 * (nvinfer1::TensorIOMode: 1 input, 2 output), dtype (nvinfer1::DataType as an integer) and
 * its shape with -1 for dynamic dimensions. */
int32_t mt_engine_io(mt_engine* e, int32_t i, char const** name, int32_t* mode, int32_t* dtype,
                     int32_t* ndims, int64_t dims[MT_MAX_DIMS], char* err, size_t errlen);
int32_t mt_engine_num_profiles(mt_engine* e);
/* mt_engine_profile_shape gives input name's min (select 0), opt (1) or max (2) shape under
 * profile p. */
int32_t mt_engine_profile_shape(mt_engine* e, char const* name, int32_t p, int32_t select,
                                int32_t* ndims, int64_t dims[MT_MAX_DIMS], char* err,
                                size_t errlen);
/* mt_engine_device_memory returns the scratch memory a context needs, in bytes, or -1 where
 * the headers predate getDeviceMemorySizeV2 (the shim uses it from 10.8 on; 11.x removed
 * the older getDeviceMemorySize). */
int64_t mt_engine_device_memory(mt_engine* e);

/* Contexts: one per stream. A context is not safe for concurrent use. */
int32_t mt_context_create(mt_engine* e, mt_context** out, char* err, size_t errlen);
void mt_context_destroy(mt_context* c);
int32_t mt_context_set_profile(mt_context* c, int32_t p, void* stream, char* err, size_t errlen);
int32_t mt_context_set_input_shape(mt_context* c, char const* name, int32_t ndims,
                                   int64_t const* dims, char* err, size_t errlen);
/* mt_context_tensor_shape gives a tensor's shape as resolved by the input shapes set. */
int32_t mt_context_tensor_shape(mt_context* c, char const* name, int32_t* ndims,
                                int64_t dims[MT_MAX_DIMS], char* err, size_t errlen);
int32_t mt_context_set_address(mt_context* c, char const* name, void* device_ptr, char* err,
                               size_t errlen);
/* mt_context_enqueue runs the engine asynchronously on stream (enqueueV3). */
int32_t mt_context_enqueue(mt_context* c, void* stream, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* MEDLSAM_TRT_SHIM_H */
