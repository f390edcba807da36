//go:build ignore

// The build line above keeps cgo from compiling this file into package trt: CMake builds it
// into libmedlsam_trt.a (see CMakeLists.txt), which the tensorrt-tagged Go files link.
//
// shim.cpp: extern "C" functions over TensorRT's C++ runtime API (see shim.h). Written for
// the named-tensor API common to TensorRT 10.x and 11.x: nothing here uses binding indices,
// builder flags, getDeviceMemorySize (removed in 11) or anything deprecated in 10.x. Every
// entry point catches every exception; TensorRT's own failures (false or null returns) are
// reported with the last error TensorRT logged on the calling thread.

#include "shim.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <type_traits>

static_assert(nvinfer1::Dims::MAX_DIMS <= MT_MAX_DIMS, "shim.h MT_MAX_DIMS is too small");

struct mt_runtime {
    std::unique_ptr<nvinfer1::IRuntime> rt;
};

struct mt_engine {
    std::unique_ptr<nvinfer1::ICudaEngine> eng;
};

struct mt_context {
    std::unique_ptr<nvinfer1::IExecutionContext> ctx;
};

namespace {

std::atomic<mt_log_fn> gLogFn{nullptr};

// tLastError holds the last error TensorRT logged on this thread since the current entry
// point began; it becomes the message of an MT_ERR_TRT status.
thread_local std::string tLastError;
thread_local bool tOutOfMemory = false;

class Logger final : public nvinfer1::ILogger {
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        char const* text = msg != nullptr ? msg : "";
        if (severity <= Severity::kERROR) {
            try {
                tLastError = text;
                if (tLastError.find("out of memory") != std::string::npos ||
                    tLastError.find("OutOfMemory") != std::string::npos) {
                    tOutOfMemory = true;
                }
            } catch (...) {
                // Keep the previous message; logging must not throw.
            }
        }
        mt_log_fn fn = gLogFn.load();
        if (fn != nullptr) {
            fn(static_cast<int32_t>(severity), text);
        }
    }
};

Logger gLogger;

void setError(char* err, size_t errlen, char const* msg)
{
    if (err != nullptr && errlen > 0) {
        std::snprintf(err, errlen, "%s", msg != nullptr ? msg : "");
    }
}

// fail reports a TensorRT call that returned false or null.
int32_t fail(char* err, size_t errlen, char const* what)
{
    std::string msg = what;
    if (!tLastError.empty()) {
        msg += ": ";
        msg += tLastError;
    }
    setError(err, errlen, msg.c_str());
    return tOutOfMemory ? MT_ERR_NOMEM : MT_ERR_TRT;
}

int32_t badArg(char* err, size_t errlen, char const* what)
{
    setError(err, errlen, what);
    return MT_ERR_ARG;
}

// guard runs body with the per-call error state reset and turns exceptions into statuses.
template <typename Body>
int32_t guard(char* err, size_t errlen, Body&& body) noexcept
{
    try {
        tLastError.clear();
        tOutOfMemory = false;
        return body();
    } catch (std::bad_alloc const&) {
        setError(err, errlen, "out of host memory");
        return MT_ERR_NOMEM;
    } catch (std::exception const& e) {
        setError(err, errlen, e.what());
        return MT_ERR_EXCEPTION;
    } catch (...) {
        setError(err, errlen, "unknown C++ exception");
        return MT_ERR_EXCEPTION;
    }
}

// copyDims writes d into ndims/dims; false when TensorRT signalled an error (nbDims -1).
bool copyDims(nvinfer1::Dims const& d, int32_t* ndims, int64_t dims[MT_MAX_DIMS])
{
    if (d.nbDims < 0 || d.nbDims > MT_MAX_DIMS) {
        return false;
    }
    *ndims = d.nbDims;
    for (int32_t i = 0; i < d.nbDims; ++i) {
        dims[i] = static_cast<int64_t>(d.d[i]);
    }
    return true;
}

cudaStream_t toStream(void* stream)
{
    return static_cast<cudaStream_t>(stream);
}

} // namespace

extern "C" {

void mt_set_logger(mt_log_fn fn)
{
    gLogFn.store(fn);
}

void mt_header_version(int32_t* major, int32_t* minor, int32_t* patch)
{
    *major = NV_TENSORRT_MAJOR;
    *minor = NV_TENSORRT_MINOR;
    *patch = NV_TENSORRT_PATCH;
}

void mt_library_version(int32_t* major, int32_t* minor, int32_t* patch)
{
    *major = getInferLibMajorVersion();
    *minor = getInferLibMinorVersion();
    *patch = getInferLibPatchVersion();
}

int32_t mt_runtime_create(mt_runtime** out, char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (out == nullptr) {
            return badArg(err, errlen, "null output handle");
        }
        std::unique_ptr<nvinfer1::IRuntime> rt{nvinfer1::createInferRuntime(gLogger)};
        if (!rt) {
            return fail(err, errlen, "createInferRuntime failed");
        }
        *out = new mt_runtime{std::move(rt)};
        return MT_OK;
    });
}

void mt_runtime_destroy(mt_runtime* rt)
{
    try {
        delete rt;
    } catch (...) {
    }
}

int32_t mt_engine_deserialize(mt_runtime* rt, void const* plan, size_t size, mt_engine** out,
                              char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (rt == nullptr || plan == nullptr || size == 0 || out == nullptr) {
            return badArg(err, errlen, "null runtime, plan or output handle, or empty plan");
        }
        std::unique_ptr<nvinfer1::ICudaEngine> eng{rt->rt->deserializeCudaEngine(plan, size)};
        if (!eng) {
            return fail(err, errlen, "deserializeCudaEngine failed");
        }
        *out = new mt_engine{std::move(eng)};
        return MT_OK;
    });
}

void mt_engine_destroy(mt_engine* e)
{
    try {
        delete e;
    } catch (...) {
    }
}

int32_t mt_engine_num_io(mt_engine* e)
{
    if (e == nullptr) {
        return -1;
    }
    try {
        return e->eng->getNbIOTensors();
    } catch (...) {
        return -1;
    }
}

int32_t mt_engine_io(mt_engine* e, int32_t i, char const** name, int32_t* mode, int32_t* dtype,
                     int32_t* ndims, int64_t dims[MT_MAX_DIMS], char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (e == nullptr || name == nullptr || mode == nullptr || dtype == nullptr ||
            ndims == nullptr || dims == nullptr) {
            return badArg(err, errlen, "null argument");
        }
        if (i < 0 || i >= e->eng->getNbIOTensors()) {
            return badArg(err, errlen, "I/O tensor index out of range");
        }
        char const* n = e->eng->getIOTensorName(i);
        if (n == nullptr) {
            return fail(err, errlen, "getIOTensorName failed");
        }
        *name = n;
        *mode = static_cast<int32_t>(e->eng->getTensorIOMode(n));
        *dtype = static_cast<int32_t>(e->eng->getTensorDataType(n));
        if (!copyDims(e->eng->getTensorShape(n), ndims, dims)) {
            return fail(err, errlen, "getTensorShape failed");
        }
        return MT_OK;
    });
}

int32_t mt_engine_num_profiles(mt_engine* e)
{
    if (e == nullptr) {
        return -1;
    }
    try {
        return e->eng->getNbOptimizationProfiles();
    } catch (...) {
        return -1;
    }
}

int32_t mt_engine_profile_shape(mt_engine* e, char const* name, int32_t p, int32_t select,
                                int32_t* ndims, int64_t dims[MT_MAX_DIMS], char* err,
                                size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (e == nullptr || name == nullptr || ndims == nullptr || dims == nullptr) {
            return badArg(err, errlen, "null argument");
        }
        if (select < 0 || select > 2 || p < 0 || p >= e->eng->getNbOptimizationProfiles()) {
            return badArg(err, errlen, "profile index or selector out of range");
        }
        auto const sel = static_cast<nvinfer1::OptProfileSelector>(select);
        if (!copyDims(e->eng->getProfileShape(name, p, sel), ndims, dims)) {
            return fail(err, errlen, "getProfileShape failed");
        }
        return MT_OK;
    });
}

int64_t mt_engine_device_memory(mt_engine* e)
{
    if (e == nullptr) {
        return -1;
    }
#if NV_TENSORRT_MAJOR > 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR >= 8)
    try {
        return static_cast<int64_t>(e->eng->getDeviceMemorySizeV2());
    } catch (...) {
        return -1;
    }
#else
    return -1;
#endif
}

int32_t mt_context_create(mt_engine* e, mt_context** out, char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (e == nullptr || out == nullptr) {
            return badArg(err, errlen, "null engine or output handle");
        }
        std::unique_ptr<nvinfer1::IExecutionContext> ctx{e->eng->createExecutionContext()};
        if (!ctx) {
            return fail(err, errlen, "createExecutionContext failed");
        }
        *out = new mt_context{std::move(ctx)};
        return MT_OK;
    });
}

void mt_context_destroy(mt_context* c)
{
    try {
        delete c;
    } catch (...) {
    }
}

int32_t mt_context_set_profile(mt_context* c, int32_t p, void* stream, char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (c == nullptr) {
            return badArg(err, errlen, "null context");
        }
        if (!c->ctx->setOptimizationProfileAsync(p, toStream(stream))) {
            return fail(err, errlen, "setOptimizationProfileAsync failed");
        }
        return MT_OK;
    });
}

int32_t mt_context_set_input_shape(mt_context* c, char const* name, int32_t ndims,
                                   int64_t const* dims, char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (c == nullptr || name == nullptr || (ndims > 0 && dims == nullptr)) {
            return badArg(err, errlen, "null argument");
        }
        if (ndims < 0 || ndims > nvinfer1::Dims::MAX_DIMS) {
            return badArg(err, errlen, "rank out of range");
        }
        nvinfer1::Dims d{};
        d.nbDims = ndims;
        using Dim = std::remove_reference_t<decltype(d.d[0])>;
        for (int32_t i = 0; i < ndims; ++i) {
            d.d[i] = static_cast<Dim>(dims[i]);
        }
        if (!c->ctx->setInputShape(name, d)) {
            return fail(err, errlen, "setInputShape failed");
        }
        return MT_OK;
    });
}

int32_t mt_context_tensor_shape(mt_context* c, char const* name, int32_t* ndims,
                                int64_t dims[MT_MAX_DIMS], char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (c == nullptr || name == nullptr || ndims == nullptr || dims == nullptr) {
            return badArg(err, errlen, "null argument");
        }
        if (!copyDims(c->ctx->getTensorShape(name), ndims, dims)) {
            return fail(err, errlen, "getTensorShape failed");
        }
        return MT_OK;
    });
}

int32_t mt_context_set_address(mt_context* c, char const* name, void* device_ptr, char* err,
                               size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (c == nullptr || name == nullptr || device_ptr == nullptr) {
            return badArg(err, errlen, "null context, name or device pointer");
        }
        if (!c->ctx->setTensorAddress(name, device_ptr)) {
            return fail(err, errlen, "setTensorAddress failed");
        }
        return MT_OK;
    });
}

int32_t mt_context_enqueue(mt_context* c, void* stream, char* err, size_t errlen)
{
    return guard(err, errlen, [&]() -> int32_t {
        if (c == nullptr) {
            return badArg(err, errlen, "null context");
        }
        if (!c->ctx->enqueueV3(toStream(stream))) {
            return fail(err, errlen, "enqueueV3 failed");
        }
        return MT_OK;
    });
}

} // extern "C"
