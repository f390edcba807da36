// Package backend defines the runtime contract every inference backend implements: a model
// with named input and output tensors and a dynamic batch dimension. The CPU backend (ONNX
// Runtime, package engine/ort) and the GPU backend (TensorRT, package trt) both satisfy it, so
// the localisation and segmentation stages are written once against this interface and tested
// with the CPU backend or a fake.
package backend
