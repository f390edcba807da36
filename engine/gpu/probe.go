package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoGPU reports that no usable NVIDIA GPU was found (no driver, or no device).
var ErrNoGPU = errors.New("gpu: no NVIDIA GPU")

// Device is one GPU as NVML reports it.
type Device struct {
	Index             int
	Name              string // e.g. "NVIDIA H200"
	ComputeCapability string // "major.minor"
	MemoryTotal       uint64 // bytes
	MemoryFree        uint64 // bytes
	UtilizationGPU    uint32 // percent, over NVML's last sample period
	UtilizationMemory uint32 // percent
}

// Report is what a Prober found.
type Report struct {
	Driver  string // driver version, e.g. "560.35.03"
	CUDA    string // the newest CUDA version the driver supports, e.g. "12.6"
	Devices []Device
}

// Prober finds GPUs. NVML is the real one; tests use fakes.
type Prober interface {
	Probe() (Report, error)
}

// NVML is the Prober over NVIDIA's management library (libnvidia-ml.so.1, found at run time).
// It is safe for concurrent use; each Probe initialises and shuts NVML down.
type NVML struct{}

// nvmlMu serialises Init/Shutdown pairs; NVML counts them, but a probe should see one state.
var nvmlMu sync.Mutex

// Probe lists the GPUs. Without the NVIDIA driver, or with no device, the error wraps
// ErrNoGPU and says why.
func (NVML) Probe() (Report, error) {
	nvmlMu.Lock()
	defer nvmlMu.Unlock()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return Report{}, fmt.Errorf("%w: NVML: %s (is the NVIDIA driver installed?)", ErrNoGPU,
			nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	var r Report
	if v, ret := nvml.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		r.Driver = v
	}
	if v, ret := nvml.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		r.CUDA = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return r, fmt.Errorf("%w: NVML device count: %s", ErrNoGPU, nvml.ErrorString(ret))
	}
	if n == 0 {
		return r, fmt.Errorf("%w: the driver reports no device", ErrNoGPU)
	}
	for i := range n {
		dev, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return r, fmt.Errorf("gpu: NVML device %d: %s", i, nvml.ErrorString(ret))
		}
		d := Device{Index: i}
		if d.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
			return r, fmt.Errorf("gpu: NVML device %d name: %s", i, nvml.ErrorString(ret))
		}
		if major, minor, ret := dev.GetCudaComputeCapability(); ret == nvml.SUCCESS {
			d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
		}
		if mem, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemoryTotal, d.MemoryFree = mem.Total, mem.Free
		}
		if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			d.UtilizationGPU, d.UtilizationMemory = u.Gpu, u.Memory
		}
		r.Devices = append(r.Devices, d)
	}
	return r, nil
}
