//go:build !tensorrt

package trt

import (
	"errors"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

func TestNotBuilt(t *testing.T) {
	_, err := Open("any.plan", Options{Machine: testMachine})
	if !errors.Is(err, ErrNotBuilt) || !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Open without the tensorrt tag: %v, want ErrNotBuilt wrapping ErrUnavailable", err)
	}
	if _, err := LibraryVersion(); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("LibraryVersion: %v", err)
	}
	if Built() {
		t.Error("Built() is true without the tag")
	}
}
