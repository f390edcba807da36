//go:build cuda

package gpu

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/kernels"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// sharedCT is the abdomen CT of the shared data, beside the repository.
const sharedCT = "../../../shared/data/ct/abdomen_ct.nii.gz"

func openTestDevice(t *testing.T) *kgpu.Device {
	t.Helper()
	if err := kgpu.Available(); err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	d, err := kgpu.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("device Close: %v", err)
		}
	})
	return d
}

// windowStages runs the device part the CUDA kernels alone can: the real Load, a box over
// the whole volume, and as "segmentation" the SAM window of the uploaded volume written
// into the mask buffer, so that Store can compare what came back with the CPU kernel on
// the same file. It needs no TensorRT.
type windowStages struct {
	dev     *kgpu.Device
	load    DeviceStages
	win     *kgpu.Buffer
	scratch *kgpu.Buffer
	want    []uint8
	stored  int
}

func (w *windowStages) Load(ctx context.Context, job Job,
	pinned func(n int) ([]byte, error)) (Loaded, error) {
	return w.load.Load(ctx, job, pinned)
}

func (w *windowStages) Localise(ctx context.Context, s DevStream, vol DevMem, l Loaded,
	job Job) ([]Organ, *localize.Result, error) {
	return []Organ{{Label: 1, Box: eval.Box{Max: [3]int{l.Shape[0] - 1, l.Shape[1] - 1,
		l.Shape[2] - 1}}}}, nil, nil
}

func (w *windowStages) Segment(ctx context.Context, ds DevStream, vol DevMem, l Loaded,
	organs []Organ, mask DevMem) error {
	s, err := kstream(ds)
	if err != nil {
		return err
	}
	v, err := devBuf(vol)
	if err != nil {
		return err
	}
	m, err := devBuf(mask)
	if err != nil {
		return err
	}
	n := l.Shape[0] * l.Shape[1] * l.Shape[2]
	// The uint8 window lands in the first n bytes of the int16 mask buffer.
	return s.SAMWindow(m, v, n, false, w.scratch)
}

func (w *windowStages) Store(ctx context.Context, job Job, l Loaded, organs []Organ,
	mask []byte) error {
	for i, want := range w.want {
		if mask[i] != want {
			return fmt.Errorf("window voxel %d: GPU %d, CPU %d", i, mask[i], want)
		}
	}
	w.stored++
	return nil
}

// TestCUDASchedulerCT runs the scheduler on the GPU with the real streams, pinned memory
// and copies over the shared abdomen CT, three times, on one lane and on two, and checks
// each result against the CPU kernel. The wall times of both are logged (the two-lane run
// overlaps copies with compute; this is a report, not a pass criterion).
func TestCUDASchedulerCT(t *testing.T) {
	if _, err := os.Stat(sharedCT); err != nil {
		t.Skipf("shared CT absent: %v", err)
	}
	d := openTestDevice(t)
	img, err := nifti.Read(sharedCT, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint8, len(img.Volume.Data))
	if err := kernels.SAMWindow(want, img.Volume.Data); err != nil {
		t.Fatal(err)
	}
	scratch, err := d.Alloc(8)
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	jobs := make([]Job, 3)
	for i := range jobs {
		jobs[i] = Job{Query: sharedCT}
	}
	for _, lanes := range []int{1, 2} {
		st := &windowStages{dev: d, scratch: scratch, want: want}
		sc := &Scheduler{GPU: CUDA{D: d}, Stages: st, Lanes: lanes}
		start := time.Now()
		res, err := sc.Run(context.Background(), jobs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != "" {
				t.Errorf("lanes %d, job %d: %s", lanes, i, r.Err)
			}
		}
		if st.stored != len(jobs) {
			t.Errorf("lanes %d: %d of %d results stored", lanes, st.stored, len(jobs))
		}
		t.Logf("lanes %d: %d volumes of %v in %v", lanes, len(jobs), img.Volume.Shape,
			time.Since(start))
	}
}

// TestTRTMemory round-trips float32 slices through TRTMemory's staged copies, as
// trt.Model uses them.
func TestTRTMemory(t *testing.T) {
	d := openTestDevice(t)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := NewTRTMemory(d)
	if err := m.CopyToDevice(nil, []float32{1}, s.Handle()); err == nil {
		t.Error("an unregistered stream was accepted")
	}
	m.Register(s)
	const n = 1001
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i)*0.5 - 7
	}
	buf, err := m.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	dst := make([]float32, n)
	if err := m.CopyToDevice(buf, src, s.Handle()); err != nil {
		t.Fatal(err)
	}
	if err := m.CopyToHost(dst, buf, s.Handle()); err != nil {
		t.Fatal(err)
	}
	if err := m.Synchronize(s.Handle()); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if dst[i] != src[i] {
			t.Fatalf("value %d: %v, want %v", i, dst[i], src[i])
		}
	}
}

// TestLocaliseStagesRefuseSegmentation: stages opened for localisation need the MedLAM
// engine and refuse to segment, saying why, before touching the device (no GPU needed).
func TestLocaliseStagesRefuseSegmentation(t *testing.T) {
	if _, err := NewLocaliseStages(nil, nil, nil); err == nil {
		t.Error("localisation stages without the MedLAM engine were opened")
	}
	st, err := NewLocaliseStages(nil, &trt.Engine{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Segment(context.Background(), nil, nil, Loaded{}, []Organ{{Label: 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no SAM engines") {
		t.Errorf("Segment on localisation stages: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
