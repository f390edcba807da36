# medlsam-fast build. `make` builds bin/medlsam-fast (pure Go, CPU backend); `make cuda`
# builds the CUDA kernel library and a binary with the GPU kernels; `make check` runs
# everything CI runs. See README.md.

GO       ?= go
PYTHON   ?= /usr/bin/python3
BIN      := bin/medlsam-fast
CUDA_OUT := build/out/cuda
FUZZTIME ?= 60s

.PHONY: all setup demo test test-go test-python lint fuzz check cuda cuda-test-bins tensorrt \
	trt-shim-check \
	arm64-check \
	testdata-zoom \
	clean models

all: $(BIN)

$(BIN): FORCE
	$(GO) build -trimpath -o $@ ./cmd/medlsam-fast

FORCE:

# setup installs the runtime dependencies (ONNX Runtime) and, for the tests, Python tools.
setup:
	bash build/setup.sh --test

# demo is the main job on the bundled phantom with the bundled tiny models.
demo: $(BIN)
	bash build/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags tensorrt ./trt/

# test-go runs every Go test, then the fast ones (-short) again under the race detector: the
# long end-to-end tests on real CT would take tens of minutes under -race on two cores.
test-go:
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -race -short -count=1 -timeout 30m ./...
	$(GO) test -tags purego -count=1 ./internal/gunzip/ ./engine/nifti/

test-python:
	@if $(PYTHON) -c 'import torch, onnx' 2>/dev/null; then \
		$(PYTHON) -m pytest -q models; \
	else echo "test-python: skipped: $(PYTHON) lacks torch/onnx (run: bash build/setup.sh --test)"; fi

# test is the README's test command: formatting, vet, the Go tests (and the fast ones again
# with the race detector), and the model exporters' tests.
test: lint test-go test-python

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./engine/nifti/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 20s ./engine/onnxpb/

# check is what CI runs after setup: the tests, a bounded fuzz run, the CUDA build when
# nvcc is present, and the arm64 build and CPU tests when the cross tools are.
check: test fuzz
	@if command -v nvcc >/dev/null 2>&1; then \
		$(MAKE) cuda cuda-test-bins && \
		$(GO) vet -tags cuda ./kernels/gpu/ ./engine/gpu/ && \
		$(GO) vet -tags cuda,tensorrt ./trt/ ./engine/gpu/ ./cmd/medlsam-fast/ && \
		./bin/gpu-tests/kernels-gpu.test -test.count=1; \
	else echo "check: CUDA build skipped: nvcc not found (bash build/setup.sh --cuda)"; fi
	@if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && \
		command -v qemu-aarch64-static >/dev/null 2>&1; then $(MAKE) arm64-check; \
	else echo "check: arm64 check skipped: no cross compiler or qemu (bash build/setup.sh --arm64)"; fi

# arm64-check builds the command for linux/arm64 (edge boxes such as NVIDIA's Jetson and IGX
# run it) and runs the CPU kernels' tests there under qemu: the baseline C builds become NEON
# and the Go kernels lose their amd64 assembly. The test binaries are linked statically (Go
# programs with cgo hang at start under qemu-user with the dynamic loader) and skip what
# needs ONNX Runtime or torch, which this machine has only for amd64.
ARM64_ENV := CGO_ENABLED=1 GOARCH=arm64 CC=aarch64-linux-gnu-gcc
ARM64_TEST_PKGS := kernels kernels/cpunet engine/native
arm64-check:
	mkdir -p bin/arm64
	$(ARM64_ENV) $(GO) build -trimpath -o bin/arm64/medlsam-fast ./cmd/medlsam-fast
	for p in $(ARM64_TEST_PKGS); do \
		t=$(CURDIR)/bin/arm64/$$(echo $$p | sed 's|/|-|g').test; rm -f $$t; \
		$(ARM64_ENV) $(GO) test -c -ldflags '-extldflags -static' -o $$t ./$$p || exit 1; \
		(cd $$p && qemu-aarch64-static $$t -test.count=1 -test.short \
			-test.skip 'ONNXRuntime|ORT|Torch') || exit 1; done

# cuda builds the static kernel library with CMake (kernels/cuda/*.cu), then the
# cuda-tagged binary, which links it and the static CUDA runtime (kernels/gpu/native.go).
cuda:
	cmake -S . -B $(CUDA_OUT) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(CUDA_OUT) -j2
	$(GO) build -tags cuda -trimpath -o bin/medlsam-fast-cuda ./cmd/medlsam-fast

# cuda-test-bins compiles and links the GPU test binaries, to carry to a GPU machine without
# Go (bash build/gpu-check.sh runs them): one per package, named after its path
# (kernels-gpu.test, engine-gpu.test), and one built with GOEXPERIMENT=cgocheck2
# (kernels-gpu-cgocheck2.test ...), which checks every pointer that crosses into C at run time.
# The old binaries are removed first: go's staleness check ignores the CMake library, and an
# existing binary with the same build ID would be kept even after the kernels changed.
GPU_TEST_PKGS := ./kernels/gpu ./engine/gpu
cuda-test-bins: cuda
	mkdir -p bin/gpu-tests
	for p in $(GPU_TEST_PKGS); do \
		n=$$(echo $$p | sed 's|^\./||; s|/|-|g'); \
		rm -f bin/gpu-tests/$$n.test bin/gpu-tests/$$n-cgocheck2.test; \
		$(GO) test -tags cuda -c -o bin/gpu-tests/$$n.test $$p || exit 1; \
		GOEXPERIMENT=cgocheck2 $(GO) test -tags cuda -c \
			-o bin/gpu-tests/$$n-cgocheck2.test $$p || exit 1; done

# tensorrt builds the TensorRT shim with the kernels (CMake finds TensorRT under
# TENSORRT_ROOT), then bin/medlsam-fast-trt with both (tags cuda,tensorrt), linking
# libnvinfer from $(TENSORRT_ROOT)/lib. It needs TensorRT 10 or 11 and nvcc.
TENSORRT_ROOT ?=
tensorrt:
	@if [ -z "$(TENSORRT_ROOT)" ]; then \
		echo "tensorrt: set TENSORRT_ROOT to the TensorRT install prefix (the directory with"; \
		echo "  include/NvInfer.h and lib/libnvinfer.so), e.g. make tensorrt TENSORRT_ROOT=/opt/tensorrt"; \
		exit 2; fi
	cmake -S . -B $(CUDA_OUT) -DCMAKE_BUILD_TYPE=Release -DTENSORRT_ROOT=$(TENSORRT_ROOT)
	cmake --build $(CUDA_OUT) -j2
	@test -f $(CUDA_OUT)/libmedlsam_trt.a || { \
		echo "tensorrt: CMake built no libmedlsam_trt.a: TensorRT or nvcc not found (see above)"; \
		exit 1; }
	CGO_LDFLAGS="-L$(TENSORRT_ROOT)/lib $${CGO_LDFLAGS:-}" $(GO) build -tags cuda,tensorrt \
		-trimpath -o bin/medlsam-fast-trt ./cmd/medlsam-fast

# trt-shim-check compiles the TensorRT shim (trt/shim.cpp) against the headers of a
# TensorRT release, with every warning of the shim an error (the headers' own are not), and
# lists the TensorRT symbols it needs from libnvinfer: a check for machines that have the
# headers (a release's include/ directory) but no TensorRT library or GPU. CUDA's headers
# come from nvcc's package (bash build/setup.sh --cuda), or CUDA_INCLUDE.
TENSORRT_INCLUDE ?= $(if $(TENSORRT_ROOT),$(TENSORRT_ROOT)/include)
trt-shim-check:
	@test -n "$(TENSORRT_INCLUDE)" || { echo "trt-shim-check: set TENSORRT_INCLUDE to a" \
		"TensorRT include/ directory (or TENSORRT_ROOT)"; exit 2; }
	@mkdir -p build/out
	$(CXX) -std=c++17 -Wall -Wextra -Werror -isystem $(TENSORRT_INCLUDE) \
		$(if $(CUDA_INCLUDE),-isystem $(CUDA_INCLUDE)) -c \
		-o build/out/trt-shim-check.o -x c++ trt/shim.cpp
	@grep -h "define TRT_\(MAJOR\|MINOR\|PATCH\)_ENTERPRISE\|define NV_TENSORRT_\(MAJOR\|MINOR\|PATCH\) [0-9]" \
		$(TENSORRT_INCLUDE)/NvInferVersion.h
	@echo "trt-shim-check: compiled; TensorRT symbols it links:"
	@nm -C build/out/trt-shim-check.o | awk '$$1 == "U" && $$2 !~ /^(std::|__|_Unwind|operator|vtable|typeinfo|_GLOBAL|snprintf|memcpy|strlen)/ {print "  " $$2}'

models: models-medlam models-sam

# The expected outputs of the reference implementation's resampling (scipy's zoom, torch's
# one-hot interpolation) that kernels/zoom_test.go checks against.
testdata-zoom:
	$(PYTHON) kernels/testdata/zoom_reference.py

clean:
	rm -rf bin build/out

-include build/models.mk
-include build/models-sam.mk
