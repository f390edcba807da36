module github.com/medlsam-fast/medlsam-fast

go 1.26.8

require (
	github.com/spf13/pflag v1.1.0
	github.com/yalue/onnxruntime_go v1.27.0
)

require github.com/klauspost/compress v1.20.4

require github.com/NVIDIA/go-nvml v0.13.4-1
