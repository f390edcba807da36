//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// SegmentModels are the engines the device pipeline needs (manifest "model" fields).
var SegmentModels = []string{"sam-encoder", "sam-decoder"}

// DevicePipeline returns the opener of the device pipeline on the engines in dir: Select
// (ModeGPU) picks the GPU with the most free memory and the matching engines, then the
// device, the engines and the stages are opened. NVML's index is taken as the CUDA ordinal,
// which holds when CUDA_DEVICE_ORDER=PCI_BUS_ID (the worker's environment should set it on
// machines with several GPUs).
func DevicePipeline(dir string, log *slog.Logger) PipelineOpener {
	return func(batch int) (*Scheduler, func() error, error) {
		env := DefaultEnv(dir, SegmentModels)
		env.Optional = append(slices.Clone(LocalizeModels), LocalizeOptional...)
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
		enc, err := trt.Open(c.Engines["sam-encoder"], opt)
		if err != nil {
			return nil, nil, errors.Join(err, release())
		}
		closers = append(closers, enc.Close)
		dec, err := trt.Open(c.Engines["sam-decoder"], opt)
		if err != nil {
			return nil, nil, errors.Join(err, release())
		}
		closers = append(closers, dec.Close)
		if batch < 1 {
			batch = c.EncoderBatch
		}
		st, err := NewDeviceStages(dev, enc, dec, batch)
		if err != nil {
			return nil, nil, errors.Join(err, release())
		}
		// MedLAM, when its engine is there, localises jobs given a template set.
		for _, m := range []struct {
			model string
			dst   **trt.Engine
		}{{"medlam", &st.MedLAM}, {"medlam-encoder", &st.MedLAMEncoder}} {
			plan, ok := c.Engines[m.model]
			if !ok || (m.model == "medlam-encoder" && st.MedLAM == nil) {
				continue
			}
			e, err := trt.Open(plan, opt)
			if err != nil { // jobs that give their boxes still run; the others get err
				log.Warn("gpu pipeline: MedLAM engine not opened; jobs with a template set "+
					"will fail", "engine", plan, "err", err)
				st.MedLAMErr = fmt.Errorf("MedLAM engine %s: %w", plan, err)
				continue
			}
			closers = append(closers, e.Close)
			*m.dst = e
		}
		closers = append(closers, st.Close)
		log.Info("gpu pipeline opened", "gpu", c.Device.Name, "encoder_batch", st.EncoderBatch,
			"medlam", st.MedLAM != nil)
		return &Scheduler{GPU: CUDA{D: dev}, Stages: st}, release, nil
	}
}
