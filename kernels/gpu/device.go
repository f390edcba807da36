//go:build cuda

package gpu

/*
#include "runtime.cuh"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
)

// Available returns nil when a CUDA device can be used, else the reason (wrapping
// ErrNoDevice when none is present: cudaGetDeviceCount's error 100).
func Available() error {
	n, err := DeviceCount()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: cudaGetDeviceCount found 0 devices", ErrNoDevice)
	}
	return nil
}

// DeviceCount returns the number of CUDA devices.
func DeviceCount() (int, error) {
	var n C.int
	err := call("device count", func(st *C.mlk_status) C.int { return C.mlk_device_count(&n, st) })
	return int(n), err
}

// DeviceInfo describes a device.
type DeviceInfo struct {
	Ordinal         int
	Name            string
	Major, Minor    int // compute capability
	Multiprocessors int
	TotalMemory     int64 // bytes
	FreeMemory      int64 // bytes, when Open ran
	RuntimeVersion  int   // statically linked CUDA runtime, e.g. 11080
	DriverVersion   int   // CUDA version the driver supports, e.g. 13000
}

// Device is one GPU and its worker: a goroutine locked to an OS thread that makes every
// native call of the device's operations, fed through a channel. Its methods are safe for
// concurrent use; the work is serialised on the worker. Open each GPU once; Close it after
// every handle made from it.
type Device struct {
	ordinal int
	info    DeviceInfo
	jobs    chan func()
	mu      sync.RWMutex // guards closed against the send on jobs
	closed  bool
	stream  *Stream // the stream of the slice methods
	pool    *Pool
}

// Open starts the worker of device ordinal and creates its default stream and pool. The
// caller must Close the Device.
func Open(ordinal int) (*Device, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	d := &Device{ordinal: ordinal, jobs: make(chan func())}
	go d.work()
	var ci C.mlk_device_info
	err := d.do("device info", func(st *C.mlk_status) C.int {
		return C.mlk_device_info_get(C.int(ordinal), &ci, st)
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	d.info = DeviceInfo{
		Ordinal: ordinal, Name: C.GoString(&ci.name[0]), Major: int(ci.major),
		Minor: int(ci.minor), Multiprocessors: int(ci.multiprocessors),
		TotalMemory: int64(ci.total_memory), FreeMemory: int64(ci.free_memory),
		RuntimeVersion: int(ci.runtime_version), DriverVersion: int(ci.driver_version),
	}
	if d.stream, err = d.NewStream(); err != nil {
		d.stop()
		return nil, err
	}
	d.pool = d.NewPool()
	return d, nil
}

// work is the worker loop: one OS thread makes every call, so a device setting made by the
// runtime on that thread is never lost between the calls of one operation.
func (d *Device) work() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for f := range d.jobs {
		f()
	}
}

// run executes f on the worker and returns its error, or ErrClosed after Close.
func (d *Device) run(f func() error) error {
	if d == nil {
		return ErrClosed
	}
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return ErrClosed
	}
	done := make(chan error, 1)
	d.jobs <- func() { done <- f() }
	d.mu.RUnlock()
	return <-done
}

// do runs one native entry on the worker.
func (d *Device) do(op string, f func(st *C.mlk_status) C.int) error {
	return d.run(func() error { return call(op, f) })
}

func (d *Device) dev() C.int { return C.int(d.ordinal) }

// Info returns the device's description.
func (d *Device) Info() DeviceInfo { return d.info }

// Pool returns the device's pool of buffers, used by the slice methods.
func (d *Device) Pool() *Pool { return d.pool }

func (d *Device) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.jobs)
	}
}

// Close releases the pool and the default stream, then stops the worker. Buffers, streams
// and events made by the caller must be closed first (their Close then fails with
// ErrClosed). Close is idempotent and nil-safe.
func (d *Device) Close() error {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return nil
	}
	// Teardown order: pooled memory, then the stream it was used on, then the worker.
	err := d.pool.Close()
	if e := d.stream.Close(); err == nil {
		err = e
	}
	d.stop()
	return err
}
