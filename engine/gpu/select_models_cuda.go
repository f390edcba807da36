//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// The devices opened in this process, shared by the kernels and the engine models (each
// GPU is opened once), with the number of holders.
var (
	devMu   sync.Mutex
	devices = map[int]*sharedDev{}
)

type sharedDev struct {
	d    *kgpu.Device
	refs int
}

// sharedDevice opens CUDA device ordinal, or takes another reference to it; release drops
// the reference and closes the device after the last one. release is idempotent.
func sharedDevice(ordinal int) (*kgpu.Device, func() error, error) {
	devMu.Lock()
	defer devMu.Unlock()
	sd := devices[ordinal]
	if sd == nil {
		d, err := kgpu.Open(ordinal)
		if err != nil {
			return nil, nil, err
		}
		sd = &sharedDev{d: d}
		devices[ordinal] = sd
	}
	sd.refs++
	var once sync.Once
	release := func() error {
		var err error
		once.Do(func() {
			devMu.Lock()
			defer devMu.Unlock()
			sd.refs--
			if sd.refs == 0 {
				delete(devices, ordinal)
				err = sd.d.Close()
			}
		})
		return err
	}
	return sd.d, release, nil
}

// engineModel is a trt.Model with the engine and the stream it owns.
type engineModel struct {
	*trt.Model
	e *trt.Engine
	s *kgpu.Stream
}

func (m *engineModel) Close() error {
	err := m.Model.Close()
	return errors.Join(err, m.e.Close(), m.s.Close())
}

func openEngineModels(c Choice) (ModelOpener, func() error, error) {
	if c.Backend != TensorRT {
		return nil, nil, fmt.Errorf("gpu: engine models for a %s choice", c.Backend)
	}
	d, release, err := sharedDevice(c.Device.Index)
	if err != nil {
		return nil, nil, err
	}
	mem := NewTRTMemory(d)
	open := func(onnxPath string, man *backend.Manifest) (backend.Model, error) {
		plan, ok := c.Engines[man.Model]
		if !ok {
			return nil, fmt.Errorf("%w: gpu: no TensorRT engine for model %q (%s)",
				backend.ErrUnavailable, man.Model, onnxPath)
		}
		e, err := trt.Open(plan, trt.Options{Machine: c.Machine, ONNX: onnxPath})
		if err != nil {
			return nil, err
		}
		s, err := d.NewStream()
		if err != nil {
			return nil, errors.Join(err, e.Close())
		}
		mem.Register(s)
		m, err := trt.NewModel(e, mem, s.Handle())
		if err != nil {
			return nil, errors.Join(err, e.Close(), s.Close())
		}
		return &engineModel{Model: m, e: e, s: s}, nil
	}
	return open, release, nil
}
