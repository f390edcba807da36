package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// The device-resident pipeline: a scheduler that moves query volumes through the GPU with
// one host-to-device copy each and two streams, written against the small interfaces below
// so that its ordering is tested with fakes. The real implementations (kernels/gpu memory
// and streams, TensorRT engines) are in the files built with the `cuda` tag.

// DevMem is device memory owned by whoever allocated it (kernels/gpu.Buffer).
type DevMem interface {
	Bytes() int64
	Close() error
}

// PinnedMem is page-locked host memory (kernels/gpu.HostBuffer): the only host memory the
// streams copy from or to. Data views it; the view is valid until Close.
type PinnedMem interface {
	Data() []byte
	Close() error
}

// DevStream is one stream of the device. Copies are enqueued and return at once; Sync waits
// for everything enqueued. Its methods are called from one goroutine at a time.
type DevStream interface {
	CopyToDevice(dst DevMem, src PinnedMem, n int) error
	CopyToHost(dst PinnedMem, src DevMem, n int) error
	Sync() error
	Close() error
}

// GPU allocates what the scheduler needs on one device. Its methods are safe for concurrent
// use.
type GPU interface {
	NewStream() (DevStream, error)
	Alloc(n int) (DevMem, error)
	AllocPinned(n int) (PinnedMem, error)
}

// Job is one query of a batch: the volume to read and where its label map goes. It is also
// what the supervisor sends to the worker process, as JSON.
type Job struct {
	Query string `json:"query"`
	// Mask is where the label map goes; empty for a job that only localises (with
	// Templates): it is not segmented and only its Localization comes back.
	Mask string `json:"mask,omitempty"`
	// Organs, when set, gives the boxes instead of localising on the device: a JSON file
	// of []Organ (the CPU localisation's output, say).
	Organs string `json:"organs,omitempty"`
	// Templates, when Organs is empty, is a template-set file (localize.TemplateSet.Save)
	// with which the worker localises the query on the device, with the options of
	// Localize (defaults when nil).
	Templates string           `json:"templates,omitempty"`
	Localize  *LocalizeOptions `json:"localize,omitempty"`
}

// LocalizeOptions are the settings of a device localisation (localize.Config's fields of
// the same names; zero values mean localize's defaults).
type LocalizeOptions struct {
	Seed        uint64 `json:"seed"`
	CoarseCrops int    `json:"coarse_crops,omitempty"`
	// Batch is the patches per MedLAM engine call (capped by the engines' profiles; 0: the
	// engine profile's optimum, within about 1 GiB of workspace: DeviceLocaliser).
	Batch int `json:"batch,omitempty"`
}

// Organ is one box to segment, in voxel indices (i, j, k) of the query, inclusive; Chunks
// (SPL localisation) replace Box slice range by slice range when present.
type Organ struct {
	Label  int        `json:"label"`
	Name   string     `json:"name,omitempty"`
	Box    eval.Box   `json:"box"`
	Chunks []eval.Box `json:"chunks,omitempty"`
}

// OrgansOf returns the organs of loc for the pipeline to segment, checked against a grid
// of shape (segment.ValidateOrgans); a localisation without organs is an error too. The
// errors name query.
func OrgansOf(loc *localize.Result, shape [3]int, query string) ([]Organ, error) {
	seg := segment.FromLocalization(loc)
	if len(seg) == 0 {
		return nil, fmt.Errorf("%s: no organ to segment", query)
	}
	if err := segment.ValidateOrgans(seg, shape); err != nil {
		return nil, fmt.Errorf("%w (query %s)", err, query)
	}
	organs := make([]Organ, 0, len(seg))
	for _, o := range seg {
		organs = append(organs, Organ{Label: o.Label, Name: o.Name, Box: o.Box,
			Chunks: o.Chunks})
	}
	return organs, nil
}

// Loaded is a query read into pinned memory by Stages.Load.
type Loaded struct {
	Shape      [3]int // NX, NY, NZ, i fastest
	VoxelBytes int    // bytes of the voxels at the start of the pinned buffer
	MaskBytes  int    // bytes of the label map Segment writes (int16 labels: 2 per voxel)
	//                   (unused for a job that only localises)
	Meta any // what Store needs (the header), opaque to the scheduler
}

// Result is the outcome of one job.
type Result struct {
	Job    Job     `json:"job"`
	Organs []Organ `json:"organs,omitempty"`
	// Localization is the device localisation of a job given Templates.
	Localization *localize.Result `json:"localization,omitempty"`
	Err          string           `json:"err,omitempty"`
	// OOM marks a failure for want of device or pinned memory, which a smaller encoder
	// batch may avoid.
	OOM bool `json:"oom,omitempty"`
}

// isOOM reports whether err is an allocation failure of TensorRT or the CUDA kernels.
func isOOM(err error) bool {
	return errors.Is(err, trt.ErrOutOfMemory) || errors.Is(err, kgpu.ErrOutOfMemory)
}

// Stages are the per-volume steps of the pipeline. The scheduler calls Load, Localise,
// Segment and Store of one job in that order (Load and Localise only, for a job without a
// Mask); Localise and Segment of different jobs never run at the same time (they may share
// device workspace), while Load and Store of one job may run while another job computes.
type Stages interface {
	// Load reads job's volume into pinned memory obtained from pinned (called once, with
	// the voxel bytes; the buffer is the scheduler's and outlives the call).
	Load(ctx context.Context, job Job, pinned func(n int) ([]byte, error)) (Loaded, error)
	// Localise enqueues on s the work from the uploaded volume (vol, in the layout Load
	// wrote) to the boxes, and returns them, with the localisation when it ran on the
	// device (nil for boxes given by the job); only boxes and points come to the host.
	Localise(ctx context.Context, s DevStream, vol DevMem, l Loaded, job Job) ([]Organ,
		*localize.Result, error)
	// Segment enqueues on s the segmentation of vol inside the boxes, writing the label
	// map into mask (l.MaskBytes, cleared by Segment).
	Segment(ctx context.Context, s DevStream, vol DevMem, l Loaded, organs []Organ,
		mask DevMem) error
	// Store writes the label map (in pinned memory, valid during the call) for job.
	Store(ctx context.Context, job Job, l Loaded, organs []Organ, mask []byte) error
}

// Scheduler runs jobs through Stages on a GPU with Lanes lanes (default 2), each with its
// own stream and buffers: job k runs on lane k mod Lanes. A lane loads its job, enqueues the
// job's single copy to the device, then waits for its turn to compute; so the copy of
// volume k+1 (on one stream) overlaps the compute of volume k (on the other). The turn
// passes in job order once a lane's stream has drained, so stage workspace is never used
// by two jobs at once. Buffers grow as volumes grow and are freed when Run returns.
//
// A Scheduler runs one batch at a time; it is not safe for concurrent Run calls.
type Scheduler struct {
	GPU    GPU
	Stages Stages
	Lanes  int
}

// lane is one stream and the buffers of the job on it.
type lane struct {
	s        DevStream
	in       PinnedMem // the voxels, as Load wrote them
	vol      DevMem    // the voxels on the device
	mask     DevMem    // the label map on the device
	maskHost PinnedMem // the label map back on the host
}

// Run runs every job and returns one Result per job, in order. A job that fails is
// reported in its Result and the others go on; Run's error is for the batch as a whole
// (a stream that could not be created, a cancelled context).
func (sc *Scheduler) Run(ctx context.Context, jobs []Job) ([]Result, error) {
	n := max(sc.Lanes, 1)
	if sc.Lanes == 0 {
		n = 2
	}
	if sc.GPU == nil || sc.Stages == nil {
		return nil, errors.New("gpu: Scheduler needs a GPU and Stages")
	}
	lanes := make([]*lane, n)
	defer func() {
		for _, l := range lanes {
			l.close()
		}
	}()
	for i := range lanes {
		s, err := sc.GPU.NewStream()
		if err != nil {
			return nil, fmt.Errorf("gpu: pipeline stream %d: %w", i, err)
		}
		lanes[i] = &lane{s: s}
	}
	// turn[k] is closed when job k may compute: job k-1 is done with the device.
	turn := make([]chan struct{}, len(jobs)+1)
	for k := range turn {
		turn[k] = make(chan struct{})
	}
	if len(jobs) > 0 {
		close(turn[0])
	}
	results := make([]Result, len(jobs))
	done := make(chan struct{}, n)
	for i, l := range lanes {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := i; k < len(jobs); k += n {
				results[k] = sc.runJob(ctx, l, jobs[k], turn[k], turn[k+1])
			}
		}()
	}
	for range lanes {
		<-done
	}
	return results, ctx.Err()
}

// runJob runs one job on lane l: load, copy in, wait for the turn (my), compute, pass the
// turn (next), store. The turn is passed on every path, so one failed job does not stall
// the batch, and only after it came: a job failing before its compute must not let the
// next job compute beside the previous one.
func (sc *Scheduler) runJob(ctx context.Context, l *lane, job Job, my,
	next chan struct{}) Result {
	res := Result{Job: job}
	passed := false
	pass := func() {
		if !passed {
			passed = true
			<-my // every job before this one passes the turn on every path: no deadlock
			close(next)
		}
	}
	defer pass()
	fail := func(stage string, err error) Result {
		res.Err = fmt.Sprintf("gpu: %s: %s: %v", job.Query, stage, err)
		res.OOM = isOOM(err)
		return res
	}
	if err := ctx.Err(); err != nil {
		return fail("cancelled", err)
	}
	if job.Mask == "" && (job.Templates == "" || job.Organs != "") {
		return fail("job", errors.New("a job without a mask only localises: it needs a "+
			"template set and no boxes"))
	}

	// Read the volume into the lane's pinned buffer (host work, overlapping the other
	// lane's compute).
	ld, err := sc.Stages.Load(ctx, job, func(nb int) ([]byte, error) {
		if err := growPinned(sc.GPU, &l.in, nb); err != nil {
			return nil, err
		}
		return l.in.Data()[:nb], nil
	})
	if err != nil {
		return fail("load", err)
	}
	segments := job.Mask != ""
	if l.in == nil || ld.VoxelBytes < 1 || ld.VoxelBytes > len(l.in.Data()) ||
		(segments && ld.MaskBytes < 1) {
		return fail("load", fmt.Errorf("loaded %d voxel bytes, %d mask bytes, outside the "+
			"pinned buffer", ld.VoxelBytes, ld.MaskBytes))
	}

	// The one copy of the volume to the device, enqueued before waiting for the turn.
	if err := growDev(sc.GPU, &l.vol, ld.VoxelBytes); err != nil {
		return fail("allocate volume", err)
	}
	if err := l.s.CopyToDevice(l.vol, l.in, ld.VoxelBytes); err != nil {
		return fail("copy volume", err)
	}
	select {
	case <-my:
	case <-ctx.Done():
		_ = l.s.Sync()
		return fail("cancelled", ctx.Err())
	}

	// Compute: localise, segment, bring the mask back; drain the stream, pass the turn.
	organs, loc, err := sc.compute(ctx, l, job, ld)
	if serr := l.s.Sync(); err == nil && serr != nil {
		err = fmt.Errorf("stream: %w", serr)
	}
	pass()
	res.Organs, res.Localization = organs, loc
	if err != nil {
		return fail("compute", err)
	}
	if !segments {
		return res
	}

	// Store while the next job computes.
	if err := sc.Stages.Store(ctx, job, ld, organs, l.maskHost.Data()[:ld.MaskBytes]); err != nil {
		return fail("store", err)
	}
	return res
}

// compute runs the device stages of one job on its lane and enqueues the mask's copy back.
func (sc *Scheduler) compute(ctx context.Context, l *lane, job Job, ld Loaded) ([]Organ,
	*localize.Result, error) {
	organs, loc, err := sc.Stages.Localise(ctx, l.s, l.vol, ld, job)
	if err != nil {
		return nil, nil, fmt.Errorf("localise: %w", err)
	}
	if job.Mask == "" {
		return organs, loc, nil
	}
	if err := growDev(sc.GPU, &l.mask, ld.MaskBytes); err != nil {
		return organs, loc, fmt.Errorf("allocate mask: %w", err)
	}
	if err := growPinned(sc.GPU, &l.maskHost, ld.MaskBytes); err != nil {
		return organs, loc, fmt.Errorf("allocate mask: %w", err)
	}
	if err := sc.Stages.Segment(ctx, l.s, l.vol, ld, organs, l.mask); err != nil {
		return organs, loc, fmt.Errorf("segment: %w", err)
	}
	if err := l.s.CopyToHost(l.maskHost, l.mask, ld.MaskBytes); err != nil {
		return organs, loc, fmt.Errorf("copy mask: %w", err)
	}
	return organs, loc, nil
}

// growDev makes *m at least n bytes, replacing a smaller buffer. The lane's stream is idle
// whenever this runs for its buffers (their last users were synchronised).
func growDev(g GPU, m *DevMem, n int) error {
	if *m != nil && (*m).Bytes() >= int64(n) {
		return nil
	}
	if *m != nil {
		if err := (*m).Close(); err != nil {
			return err
		}
		*m = nil
	}
	b, err := g.Alloc(n)
	if err != nil {
		return err
	}
	*m = b
	return nil
}

// growPinned is growDev for pinned host memory.
func growPinned(g GPU, m *PinnedMem, n int) error {
	if *m != nil && len((*m).Data()) >= n {
		return nil
	}
	if *m != nil {
		if err := (*m).Close(); err != nil {
			return err
		}
		*m = nil
	}
	b, err := g.AllocPinned(n)
	if err != nil {
		return err
	}
	*m = b
	return nil
}

// close drains the stream, then frees the buffers and the stream. nil-safe.
func (l *lane) close() {
	if l == nil {
		return
	}
	_ = l.s.Sync()
	for _, m := range []DevMem{l.vol, l.mask} {
		if m != nil {
			_ = m.Close()
		}
	}
	for _, m := range []PinnedMem{l.in, l.maskHost} {
		if m != nil {
			_ = m.Close()
		}
	}
	_ = l.s.Close()
}
