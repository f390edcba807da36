//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"log/slog"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// DevicePipeline returns the opener of the device pipeline for work on the engines in dir:
// Select (ModeGPU) picks the GPU with the most free memory and the engines work requires
// (Work.Models), then the device, the engines and the stages are opened. The opener's batch
// is the SAM encoder batch for WorkSegment (0: Select's, from free memory) and a cap on the
// MedLAM patches per engine call for WorkLocalise (0: none). NVML's index is taken as the
// CUDA ordinal, which holds when CUDA_DEVICE_ORDER=PCI_BUS_ID (the worker's environment
// should set it on machines with several GPUs).
func DevicePipeline(dir string, work Work, log *slog.Logger) PipelineOpener {
	return func(batch int) (*Scheduler, func() error, error) {
		env := DefaultEnv(dir, nil)
		env.Models, env.Optional = work.Models()
		c, err := Select(ModeGPU, env, log)
		if err != nil {
			return nil, nil, err
		}
		dev, err := kgpu.Open(c.Device.Index)
		if err != nil {
			return nil, nil, err
		}
		var closers []func() error
		release := func() error {
			var errs []error
			// Teardown in reverse: stages (contexts, workspace), engines, then the device.
			for i := len(closers) - 1; i >= 0; i-- {
				errs = append(errs, closers[i]())
			}
			return errors.Join(errs...)
		}
		closers = append(closers, dev.Close)
		opt := trt.Options{Machine: c.Machine}
		open := func(model string) (*trt.Engine, error) {
			e, err := trt.Open(c.Engines[model], opt)
			if err != nil {
				return nil, err
			}
			closers = append(closers, e.Close)
			return e, nil
		}
		var st *DeviceStages
		if work == WorkLocalise {
			full, err := open("medlam")
			if err != nil {
				return nil, nil, errors.Join(err, release())
			}
			var enc *trt.Engine // optional: without it the full network runs the coarse step
			if plan, ok := c.Engines["medlam-encoder"]; ok {
				if enc, err = open("medlam-encoder"); err != nil {
					log.Warn("gpu pipeline: MedLAM encoder engine not opened; the coarse "+
						"step runs the full network", "engine", plan, "err", err)
					enc = nil
				}
			}
			if st, err = NewLocaliseStages(dev, full, enc); err != nil {
				return nil, nil, errors.Join(err, release())
			}
			st.MedLAMBatch = max(batch, 0)
		} else {
			if st, err = openSegmentStages(dev, c, batch, open, log); err != nil {
				return nil, nil, errors.Join(err, release())
			}
		}
		closers = append(closers, st.Close)
		log.Info("gpu pipeline opened", "work", string(work), "gpu", c.Device.Name,
			"encoder_batch", st.EncoderBatch, "medlam", st.MedLAM != nil,
			"medlam_batch_cap", st.MedLAMBatch)
		return &Scheduler{GPU: CUDA{D: dev}, Stages: st}, release, nil
	}
}

// openSegmentStages opens the SAM engines and the stages that segment, with the MedLAM
// engines when c has them (jobs given a template set localise; a MedLAM engine that does
// not open fails those jobs only, with the reason).
func openSegmentStages(dev *kgpu.Device, c Choice, batch int,
	open func(model string) (*trt.Engine, error), log *slog.Logger) (*DeviceStages, error) {
	enc, err := open("sam-encoder")
	if err != nil {
		return nil, err
	}
	dec, err := open("sam-decoder")
	if err != nil {
		return nil, err
	}
	if batch < 1 {
		batch = c.EncoderBatch
	}
	st, err := NewDeviceStages(dev, enc, dec, batch)
	if err != nil {
		return nil, err
	}
	for _, m := range []struct {
		model string
		dst   **trt.Engine
	}{{"medlam", &st.MedLAM}, {"medlam-encoder", &st.MedLAMEncoder}} {
		plan, ok := c.Engines[m.model]
		if !ok || (m.model == "medlam-encoder" && st.MedLAM == nil) {
			continue
		}
		e, err := open(m.model)
		if err != nil {
			log.Warn("gpu pipeline: MedLAM engine not opened; jobs with a template set "+
				"will fail", "engine", plan, "err", err)
			st.MedLAMErr = fmt.Errorf("MedLAM engine %s: %w", plan, err)
			continue
		}
		*m.dst = e
	}
	return st, nil
}
