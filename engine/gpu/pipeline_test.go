package gpu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
)

// The fakes: a GPU whose streams run their work on one goroutine each, in order and
// asynchronously as CUDA streams do, and whose memory is Go slices; every copy and stage
// op is logged with the stream that ran it and a global sequence number at start and end.

type fakeEvent struct {
	op         string // "h2d", "d2h", "localise", "segment"
	job        int    // the job the data belongs to (from the buffer's first 4 bytes)
	stream     int
	bytes      int
	start, end int
}

type fakeGPU struct {
	mu      sync.Mutex
	seq     int
	events  []fakeEvent
	live    int // buffers allocated and not closed
	streams int
	allocs  []int                 // sizes of the device allocations, in order
	done    map[int]chan struct{} // job -> closed when its h2d copy completed
	failOn  map[string]bool       // "alloc" fails Alloc
}

func newFakeGPU() *fakeGPU {
	return &fakeGPU{done: map[int]chan struct{}{}, failOn: map[string]bool{}}
}

func (g *fakeGPU) tick() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	return g.seq
}

func (g *fakeGPU) log(e fakeEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events = append(g.events, e)
}

// uploaded returns the channel closed when job's volume has reached the device.
func (g *fakeGPU) uploaded(job int) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.done[job]
	if !ok {
		c = make(chan struct{})
		g.done[job] = c
	}
	return c
}

type fakeMem struct {
	g      *fakeGPU
	b      []byte
	closed bool
}

func (m *fakeMem) Bytes() int64 { return int64(len(m.b)) }
func (m *fakeMem) Data() []byte { return m.b }
func (m *fakeMem) Close() error {
	if m.closed {
		return errors.New("fake: double close")
	}
	m.closed = true
	m.g.mu.Lock()
	m.g.live--
	m.g.mu.Unlock()
	return nil
}

func (g *fakeGPU) alloc(n int) *fakeMem {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live++
	return &fakeMem{g: g, b: make([]byte, n)}
}

func (g *fakeGPU) Alloc(n int) (DevMem, error) {
	if g.failOn["alloc"] {
		return nil, errors.New("fake: out of device memory")
	}
	g.mu.Lock()
	g.allocs = append(g.allocs, n)
	g.mu.Unlock()
	return g.alloc(n), nil
}

func (g *fakeGPU) AllocPinned(n int) (PinnedMem, error) { return g.alloc(n), nil }

type fakeStream struct {
	g    *fakeGPU
	id   int
	ops  chan func()
	wg   sync.WaitGroup
	once sync.Once
}

func (g *fakeGPU) NewStream() (DevStream, error) {
	g.mu.Lock()
	id := g.streams
	g.streams++
	g.mu.Unlock()
	s := &fakeStream{g: g, id: id, ops: make(chan func(), 64)}
	go func() {
		for f := range s.ops {
			f()
			s.wg.Done()
		}
	}()
	return s, nil
}

// enqueue runs f on the stream's goroutine, logging it as op.
func (s *fakeStream) enqueue(op string, job, bytes int, f func()) {
	s.wg.Add(1)
	s.ops <- func() {
		e := fakeEvent{op: op, job: job, stream: s.id, bytes: bytes, start: s.g.tick()}
		f()
		e.end = s.g.tick()
		s.g.log(e)
	}
}

func jobOf(b []byte) int { return int(binary.LittleEndian.Uint32(b)) }

func (s *fakeStream) CopyToDevice(dst DevMem, src PinnedMem, n int) error {
	d, h := dst.(*fakeMem), src.(*fakeMem)
	job := jobOf(h.b)
	s.enqueue("h2d", job, n, func() {
		time.Sleep(2 * time.Millisecond) // a copy takes time
		copy(d.b[:n], h.b[:n])
		c := s.g.uploaded(job)
		select {
		case <-c: // a batch run again on the same fake
		default:
			close(c)
		}
	})
	return nil
}

func (s *fakeStream) CopyToHost(dst PinnedMem, src DevMem, n int) error {
	d, h := dst.(*fakeMem), src.(*fakeMem)
	s.enqueue("d2h", -1, n, func() { copy(d.b[:n], h.b[:n]) })
	return nil
}

func (s *fakeStream) Sync() error { s.wg.Wait(); return nil }

func (s *fakeStream) Close() error {
	s.wg.Wait()
	s.once.Do(func() { close(s.ops) })
	return nil
}

// fakeStages loads volume k as nx*ny*nz float32 voxels whose first 4 bytes hold k, localises
// to one box whose label is k+1, and segments by writing that label into every voxel of the
// mask. In compute of job k it waits up to overlapWait for job k+1's volume to reach the
// device, and records whether it did: the double-buffering the scheduler promises.
type fakeStages struct {
	g           *fakeGPU
	n           int // jobs
	shapes      map[int][3]int
	overlapWait time.Duration
	failLoad    map[int]bool

	mu      sync.Mutex
	order   []string // "load 0", "localise 0", ...
	overlap map[int]bool
	active  int // jobs inside Localise..Segment (must never exceed 1)
	maxAct  int
	stored  map[int]int16
}

func (f *fakeStages) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, s)
}

func jobIndex(j Job) int {
	var k int
	fmt.Sscanf(j.Query, "q%d.nii.gz", &k)
	return k
}

func (f *fakeStages) Load(ctx context.Context, job Job,
	pinned func(n int) ([]byte, error)) (Loaded, error) {
	k := jobIndex(job)
	f.note(fmt.Sprint("load ", k))
	if f.failLoad[k] {
		return Loaded{}, errors.New("unreadable")
	}
	sh := f.shapes[k]
	n := 4 * sh[0] * sh[1] * sh[2]
	b, err := pinned(n)
	if err != nil {
		return Loaded{}, err
	}
	for i := range b {
		b[i] = byte(i * 7)
	}
	binary.LittleEndian.PutUint32(b, uint32(k))
	return Loaded{Shape: sh, VoxelBytes: n, MaskBytes: n / 2, Meta: k}, nil
}

func (f *fakeStages) Localise(ctx context.Context, s DevStream, vol DevMem, l Loaded,
	job Job) ([]Organ, *localize.Result, error) {
	k := l.Meta.(int)
	f.note(fmt.Sprint("localise ", k))
	f.mu.Lock()
	f.active++
	f.maxAct = max(f.maxAct, f.active)
	f.mu.Unlock()
	fs := s.(*fakeStream)
	var got int
	fs.enqueue("localise", k, 0, func() {
		got = jobOf(vol.(*fakeMem).b)
		seen := false
		if k+1 < f.n {
			select {
			case <-f.g.uploaded(k + 1):
				seen = true
			case <-time.After(f.overlapWait):
			}
		}
		f.mu.Lock()
		f.overlap[k] = seen
		f.mu.Unlock()
	})
	if err := s.Sync(); err != nil { // the boxes come back
		return nil, nil, err
	}
	if job.Mask == "" { // a localisation-only job computes no further
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}
	if got != k {
		return nil, nil, fmt.Errorf("device volume holds job %d, want %d", got, k)
	}
	return []Organ{{Label: k + 1, Box: eval.Box{Max: [3]int{1, 1, 1}}}},
		&localize.Result{Query: job.Query}, nil
}

func (f *fakeStages) Segment(ctx context.Context, s DevStream, vol DevMem, l Loaded,
	organs []Organ, mask DevMem) error {
	k := l.Meta.(int)
	f.note(fmt.Sprint("segment ", k))
	s.(*fakeStream).enqueue("segment", k, 0, func() {
		m := mask.(*fakeMem).b[:l.MaskBytes]
		for i := 0; i+1 < len(m); i += 2 {
			binary.LittleEndian.PutUint16(m[i:], uint16(organs[0].Label))
		}
	})
	f.mu.Lock()
	f.active--
	f.mu.Unlock()
	return nil
}

func (f *fakeStages) Store(ctx context.Context, job Job, l Loaded, organs []Organ,
	mask []byte) error {
	k := l.Meta.(int)
	f.note(fmt.Sprint("store ", k))
	if len(mask) != l.MaskBytes {
		return fmt.Errorf("mask of %d bytes, want %d", len(mask), l.MaskBytes)
	}
	for i := 0; i+1 < len(mask); i += 2 {
		if v := int16(binary.LittleEndian.Uint16(mask[i:])); v != int16(k+1) {
			return fmt.Errorf("mask value %d at byte %d, want %d", v, i, k+1)
		}
	}
	f.mu.Lock()
	f.stored[k] = int16(k + 1)
	f.mu.Unlock()
	return nil
}

func newFakeStages(g *fakeGPU, n int, wait time.Duration) *fakeStages {
	f := &fakeStages{g: g, n: n, shapes: map[int][3]int{}, overlapWait: wait,
		failLoad: map[int]bool{}, overlap: map[int]bool{}, stored: map[int]int16{}}
	for k := range n {
		f.shapes[k] = [3]int{5 + k, 4, 3} // growing volumes: buffers must grow
	}
	return f
}

func fakeJobs(n int) []Job {
	jobs := make([]Job, n)
	for k := range jobs {
		jobs[k] = Job{Query: fmt.Sprintf("q%d.nii.gz", k), Mask: fmt.Sprintf("m%d.nii.gz", k)}
	}
	return jobs
}

// TestSchedulerOverlap runs a batch on two lanes and on one. On two, the copy of volume
// k+1 must complete while volume k computes (the compute op waits for it, and would time
// out if the scheduler serialised them); on one lane it cannot, which shows the check
// detects a serial schedule.
func TestSchedulerOverlap(t *testing.T) {
	tests := []struct {
		lanes       int
		wait        time.Duration
		wantOverlap bool
	}{
		{lanes: 2, wait: 10 * time.Second, wantOverlap: true},
		{lanes: 0, wait: 10 * time.Second, wantOverlap: true}, // default: 2
		{lanes: 1, wait: 30 * time.Millisecond, wantOverlap: false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("lanes", tc.lanes), func(t *testing.T) {
			const n = 5
			g := newFakeGPU()
			st := newFakeStages(g, n, tc.wait)
			sc := &Scheduler{GPU: g, Stages: st, Lanes: tc.lanes}
			res, err := sc.Run(context.Background(), fakeJobs(n))
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range res {
				if r.Err != "" || len(r.Organs) != 1 || r.Organs[0].Label != k+1 ||
					r.Localization == nil || r.Localization.Query != r.Job.Query {
					t.Errorf("job %d: %+v", k, r)
				}
				if st.stored[k] != int16(k+1) {
					t.Errorf("job %d: mask not stored", k)
				}
			}
			for k := range n - 1 {
				if st.overlap[k] != tc.wantOverlap {
					t.Errorf("job %d: copy of the next volume done during compute: %v, "+
						"want %v", k, st.overlap[k], tc.wantOverlap)
				}
			}
			if st.maxAct != 1 {
				t.Errorf("%d jobs computed at once, want 1", st.maxAct)
			}
			if g.live != 0 {
				t.Errorf("%d buffers left open after Run", g.live)
			}
			if want := max(tc.lanes, 1); tc.lanes != 0 && g.streams != want {
				t.Errorf("%d streams, want %d", g.streams, want)
			}
		})
	}
}

// TestSchedulerOneCopy checks the data movement of every job: exactly one host-to-device
// copy (the volume, whole), and back only the mask; each job's copy, compute and mask on
// one stream, alternating between the two; stages in order.
func TestSchedulerOneCopy(t *testing.T) {
	const n = 4
	g := newFakeGPU()
	st := newFakeStages(g, n, time.Second)
	if _, err := (&Scheduler{GPU: g, Stages: st}).Run(context.Background(),
		fakeJobs(n)); err != nil {
		t.Fatal(err)
	}
	for k := range n {
		sh := st.shapes[k]
		vox := 4 * sh[0] * sh[1] * sh[2]
		var h2d []fakeEvent
		streams := map[int]bool{}
		for _, e := range g.events {
			if e.job == k {
				streams[e.stream] = true
				if e.op == "h2d" {
					h2d = append(h2d, e)
				}
			}
		}
		if len(h2d) != 1 || h2d[0].bytes != vox {
			t.Errorf("job %d: host-to-device copies %+v, want one of %d bytes", k, h2d, vox)
		}
		if len(streams) != 1 || !streams[k%2] {
			t.Errorf("job %d ran on streams %v, want only %d", k, streams, k%2)
		}
		var order []string
		for _, s := range st.order {
			if strings.HasSuffix(s, fmt.Sprint(" ", k)) {
				order = append(order, strings.Fields(s)[0])
			}
		}
		if want := []string{"load", "localise", "segment", "store"}; !slices.Equal(order,
			want) {
			t.Errorf("job %d: stages %v, want %v", k, order, want)
		}
	}
	var d2h, h2d int
	for _, e := range g.events {
		switch e.op {
		case "d2h":
			d2h++
		case "h2d":
			h2d++
		}
	}
	if d2h != n || h2d != n {
		t.Errorf("%d copies in and %d out for %d jobs, want one each", h2d, d2h, n)
	}
	// Volumes grow job by job: the lanes' device buffers were replaced, never too small.
	if len(g.allocs) < 2*2 {
		t.Errorf("device allocations %v: buffers did not grow with the volumes", g.allocs)
	}
}

// TestSchedulerErrors checks that a job failing to load is reported and the batch goes on,
// and that a failing allocation is reported per job.
func TestSchedulerErrors(t *testing.T) {
	const n = 4
	g := newFakeGPU()
	st := newFakeStages(g, n, time.Second)
	st.failLoad[1] = true
	res, err := (&Scheduler{GPU: g, Stages: st}).Run(context.Background(), fakeJobs(n))
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if failed := r.Err != ""; failed != (k == 1) {
			t.Errorf("job %d: err %q", k, r.Err)
		}
	}
	if !strings.Contains(res[1].Err, "q1.nii.gz: load: unreadable") {
		t.Errorf("job 1 error %q does not name the file and the stage", res[1].Err)
	}

	// On three lanes a job that fails to load must still wait for its turn before passing
	// it on: job 2 may not compute beside job 0 (whose compute waits for job 1's copy,
	// which never comes, so it is slow).
	g = newFakeGPU()
	st = newFakeStages(g, 3, 50*time.Millisecond)
	st.failLoad[1] = true
	if _, err := (&Scheduler{GPU: g, Stages: st, Lanes: 3}).Run(context.Background(),
		fakeJobs(3)); err != nil {
		t.Fatal(err)
	}
	if st.maxAct != 1 {
		t.Errorf("after a failed load, %d jobs computed at once, want 1", st.maxAct)
	}

	g = newFakeGPU()
	g.failOn["alloc"] = true
	res, err = (&Scheduler{GPU: g, Stages: newFakeStages(g, 2, time.Millisecond)}).Run(
		context.Background(), fakeJobs(2))
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if !strings.Contains(r.Err, "allocate volume: fake: out of device memory") {
			t.Errorf("job %d: err %q, want the allocation failure", k, r.Err)
		}
	}
	if g.live != 0 {
		t.Errorf("%d buffers left open", g.live)
	}
}

// TestSchedulerCancel checks that a cancelled batch returns the context's error and
// frees everything.
func TestSchedulerCancel(t *testing.T) {
	g := newFakeGPU()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := (&Scheduler{GPU: g, Stages: newFakeStages(g, 3, time.Millisecond)}).Run(ctx,
		fakeJobs(3))
	if !errors.Is(err, context.Canceled) || len(res) != 3 || res[0].Err == "" {
		t.Errorf("Run after cancel = %v, %v", res, err)
	}
	if g.live != 0 {
		t.Errorf("%d buffers left open", g.live)
	}
}

// TestSchedulerLocaliseOnly runs a batch mixing jobs that only localise (no mask, a
// template set) with jobs that segment: the former stop after Localise, with their
// localisation, no mask buffers and no copy back; a mask-less job without a template set
// is refused before it is read. The overlap of copy and compute holds for both kinds.
func TestSchedulerLocaliseOnly(t *testing.T) {
	const n = 4
	g := newFakeGPU()
	st := newFakeStages(g, n, time.Second)
	jobs := fakeJobs(n)
	for _, k := range []int{0, 2} {
		jobs[k].Mask, jobs[k].Templates = "", "set.json"
	}
	res, err := (&Scheduler{GPU: g, Stages: st}).Run(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		var order []string
		for _, s := range st.order {
			if strings.HasSuffix(s, fmt.Sprint(" ", k)) {
				order = append(order, strings.Fields(s)[0])
			}
		}
		want := []string{"load", "localise", "segment", "store"}
		if k%2 == 0 {
			want = want[:2]
		}
		if r.Err != "" || r.Localization == nil || !slices.Equal(order, want) {
			t.Errorf("job %d: err %q, localisation %v, stages %v (want %v)", k, r.Err,
				r.Localization, order, want)
		}
		if k+1 < n && !st.overlap[k] {
			t.Errorf("job %d: the next volume's copy did not overlap its compute", k)
		}
	}
	d2h := 0
	for _, e := range g.events {
		if e.op == "d2h" {
			d2h++
		}
	}
	if d2h != 2 || st.maxAct != 1 {
		t.Errorf("%d masks copied back (want 2), %d jobs computed at once (want 1)", d2h,
			st.maxAct)
	}

	st = newFakeStages(g, 2, time.Millisecond)
	jobs = fakeJobs(2)
	jobs[0].Mask, jobs[1].Mask = "", ""
	jobs[1].Templates, jobs[1].Organs = "set.json", "boxes.json"
	res, err = (&Scheduler{GPU: g, Stages: st}).Run(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if !strings.Contains(r.Err, "only localises: it needs a template set") {
			t.Errorf("mask-less job %d: err %q", k, r.Err)
		}
	}
	if len(st.order) != 0 {
		t.Errorf("refused jobs were run: %v", st.order)
	}
	if g.live != 0 {
		t.Errorf("%d buffers left open", g.live)
	}
}
