package gpu

// Memory budget of the SAM ViT-B image encoder per image in a batch, on the device.
//
// TODO(#6): these are estimates from the network's shapes (fp16 activations of the four
// global-attention blocks dominate: 12 heads x 4096^2 scores), not measurements; measure
// peak memory per batch size on the GPU machine (TensorRT's getDeviceMemorySizeForProfile
// plus the I/O buffers) and replace them.
const (
	// EncoderBytesPerImage is the activation and I/O memory one more image costs.
	EncoderBytesPerImage = 640 << 20
	// EncoderFixedBytes is the batch-independent part: weights and TensorRT's workspace.
	EncoderFixedBytes = 1 << 30
	// HeadroomBytes is left free for the CUDA context, the volume and the other stages.
	HeadroomBytes = 2 << 30
)

// EncoderBatch returns the largest encoder batch in [1, maxBatch] whose memory fits in free
// bytes of device memory, given the fixed and per-image costs and the headroom; 0 when not
// even one image fits. The result is rounded down to a power of two so that batches land on
// the sizes the engine's profile was tuned around (its optimum is 8).
func EncoderBatch(free, fixed, perImage, headroom uint64, maxBatch int) int {
	if perImage == 0 || maxBatch < 1 || free <= fixed+headroom {
		return 0
	}
	n := (free - fixed - headroom) / perImage
	if n == 0 {
		return 0
	}
	b := 1
	for uint64(b*2) <= n && b*2 <= maxBatch {
		b *= 2
	}
	return b
}
