//go:build cuda

package gpu

import "testing"

// TestRuntimeVersion needs no device: the runtime is linked statically.
func TestRuntimeVersion(t *testing.T) {
	v, err := RuntimeVersion()
	if err != nil {
		t.Fatalf("RuntimeVersion: %v", err)
	}
	// Debian's nvcc is 11.8 at the oldest; a version below 11.0 means a decoding error.
	if v < 11000 {
		t.Fatalf("RuntimeVersion() = %d, want at least 11000", v)
	}
	if err := Available(); err != nil {
		t.Skipf("no usable GPU to compare with the device info: %v", err)
	}
	d := openDevice(t)
	if got := d.Info().RuntimeVersion; got != v {
		t.Errorf("device info says runtime %d, RuntimeVersion %d", got, v)
	}
}

// TestHandles checks the accessors TensorRT binds with: a live address, zero once closed.
func TestHandles(t *testing.T) {
	d := openDevice(t)
	b, err := d.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	if b.Ptr() == 0 || b.Bytes() != 1000 {
		t.Errorf("Ptr %#x, Bytes %d; want non-zero, 1000", b.Ptr(), b.Bytes())
	}
	v, err := b.View(256, 100)
	if err != nil {
		t.Fatal(err)
	}
	if v.Ptr() != b.Ptr()+256 {
		t.Errorf("view at %#x, want %#x", v.Ptr(), b.Ptr()+256)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Ptr() != 0 {
		t.Errorf("Ptr after Close = %#x, want 0", b.Ptr())
	}
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	if s.Handle() == 0 || s.Device() != d {
		t.Errorf("stream handle %#x, device %p; want non-zero, %p", s.Handle(), s.Device(), d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Handle() != 0 {
		t.Errorf("Handle after Close = %#x, want 0", s.Handle())
	}
}
