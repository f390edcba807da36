//go:build !cuda

package gpu

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Available reports why the GPU kernels cannot be used: this build has no CUDA.
func Available() error { return ErrNoCUDA }

// DeviceCount returns ErrNoCUDA in this build.
func DeviceCount() (int, error) { return 0, ErrNoCUDA }

// Device is a GPU; in this build none can be opened.
type Device struct{}

// Open returns ErrNoCUDA in this build.
func Open(ordinal int) (*Device, error) {
	return nil, fmt.Errorf("gpu: open device %d: %w", ordinal, ErrNoCUDA)
}

// Close does nothing in this build.
func (d *Device) Close() error { return nil }

// ResampleTrilinear returns ErrNoCUDA in this build.
func (d *Device) ResampleTrilinear(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return ErrNoCUDA
}

// ResampleNearest returns ErrNoCUDA in this build.
func (d *Device) ResampleNearest(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return ErrNoCUDA
}

// NormalizeHU returns ErrNoCUDA in this build.
func (d *Device) NormalizeHU(dst, src []float32) error { return ErrNoCUDA }

// SAMWindow returns ErrNoCUDA in this build.
func (d *Device) SAMWindow(dst []uint8, src []float32) error { return ErrNoCUDA }

// SAMWindowFloat returns ErrNoCUDA in this build.
func (d *Device) SAMWindowFloat(dst, src []float32) error { return ErrNoCUDA }

// SAMPreprocess returns ErrNoCUDA in this build.
func (d *Device) SAMPreprocess(dst []float32, win []uint8, shape [3]int, slices []int) error {
	return ErrNoCUDA
}

// SAMPreprocessHalf returns ErrNoCUDA in this build.
func (d *Device) SAMPreprocessHalf(dst []uint16, win []uint8, shape [3]int,
	slices []int) error {
	return ErrNoCUDA
}

// MaskSlice is the decoder output of one slice for Device.SAMMaskPostSlices.
type MaskSlice struct {
	Z      int
	Logits []float32
	Labels []int16
}

// SAMMaskPost returns ErrNoCUDA in this build.
func (d *Device) SAMMaskPost(dst []int16, h, w int, logits []float32, lowRes int,
	labels []int16) error {
	return ErrNoCUDA
}

// SAMMaskPostSlices returns ErrNoCUDA in this build.
func (d *Device) SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int,
	slices []MaskSlice) error {
	return ErrNoCUDA
}

// SimilaritySearch is the GPU similarity search; none can be made in this build.
type SimilaritySearch struct{}

// NewSimilaritySearch returns ErrNoCUDA in this build.
func (d *Device) NewSimilaritySearch(scales []kernels.SimilarityScale,
	patch int) (*SimilaritySearch, error) {
	return nil, ErrNoCUDA
}

// Search returns ErrNoCUDA in this build.
func (s *SimilaritySearch) Search(features, kern [][]float32,
	out []kernels.SimilarityMatch) error {
	return ErrNoCUDA
}

// Close does nothing in this build.
func (s *SimilaritySearch) Close() error { return nil }

// RuntimeVersion returns ErrNoCUDA in this build: no CUDA runtime is linked.
func RuntimeVersion() (int, error) { return 0, ErrNoCUDA }
