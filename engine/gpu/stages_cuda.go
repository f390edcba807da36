//go:build cuda

package gpu

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"unsafe"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// This file is the device implementation of Stages: SAM segmentation with the CUDA kernels
// and TensorRT engines, the volume never leaving the device between the window and the
// label map, and, for jobs given a template set, MedLAM localisation on the same device copy
// of the volume (DeviceLocaliser, localise_cuda.go). It compiles with the `cuda` tag alone (package trt's Go side has no tag; its
// engines open only in a `tensorrt` build), so CI type-checks it; it runs only on a GPU.

const (
	samS      = kernels.SAMImageSize // 1024
	embBytes  = 4 * 256 * 64 * 64    // one image embedding, float32
	lowRes    = 256                  // decoder mask edge
	maskBytes = 4 * lowRes * lowRes  // one decoder mask, float32
)

// DeviceStages runs the segmentation of method.md section 5 on one GPU. Its workspace is
// shared by the scheduler's lanes, which compute one at a time; it keeps one TensorRT
// context per stream. Close frees the workspace and contexts, not the Device or engines.
type DeviceStages struct {
	Dev              *kgpu.Device
	Encoder, Decoder *trt.Engine
	// EncoderBatch is the number of slices per encoder call (capped by the engine's
	// profiles); the supervisor halves it after an out-of-memory fault.
	EncoderBatch int
	// MedLAM and MedLAMEncoder are the MedLAM engines that localise jobs given a template
	// set (nil when absent: such jobs fail with the reason; MedLAMEncoder is optional).
	MedLAM, MedLAMEncoder *trt.Engine
	// MedLAMErr, when set, is why a MedLAM engine present among the engines did not open;
	// jobs with a template set fail with it.
	MedLAMErr error
	// MedLAMBatch, when positive, caps the patches per MedLAM engine call
	// (DeviceLocaliser.MaxBatch): a localisation pipeline's batch, which the supervisor
	// halves after an out-of-memory fault.
	MedLAMBatch int

	loc    *DeviceLocaliser // for the template set and options of locKey
	locKey string

	half bool // the encoder takes fp16 images
	enc  map[uintptr]*trt.Context
	dec  map[uintptr]*trt.Context
	ws   workspace
}

// NewDeviceStages checks the engines against the SAM contracts (engine/segment's tensor
// names; float32 embeddings and masks) and returns the stages. The caller must Close them.
func NewDeviceStages(dev *kgpu.Device, enc, dec *trt.Engine, batch int) (*DeviceStages, error) {
	find := func(e *trt.Engine, name string, in bool) (backend.TensorInfo, error) {
		list := e.Outputs()
		if in {
			list = e.Inputs()
		}
		for _, t := range list {
			if t.Name == name {
				return t, nil
			}
		}
		return backend.TensorInfo{}, fmt.Errorf("gpu: engine %s has no tensor %q (the "+
			"device pipeline runs the box-only decoder contract of engine/segment)",
			e.Manifest().File, name)
	}
	img, err := find(enc, segment.InputImages, true)
	if err != nil {
		return nil, err
	}
	if img.Type != backend.Float32 && img.Type != backend.Float16 {
		return nil, fmt.Errorf("gpu: encoder input %q is %s, want float32 or float16",
			img.Name, img.Type)
	}
	for _, c := range []struct {
		e    *trt.Engine
		name string
		in   bool
	}{{enc, segment.OutputEmbedding, false}, {dec, segment.OutputEmbedding, true},
		{dec, segment.InputBoxes, true}, {dec, segment.OutputMasks, false},
		{dec, segment.OutputIoU, false}} {
		t, err := find(c.e, c.name, c.in)
		if err != nil {
			return nil, err
		}
		if t.Type != backend.Float32 {
			return nil, fmt.Errorf("gpu: tensor %q of %s is %s, want float32", t.Name,
				c.e.Manifest().File, t.Type)
		}
	}
	if batch < 1 {
		return nil, fmt.Errorf("gpu: encoder batch %d", batch)
	}
	return &DeviceStages{Dev: dev, Encoder: enc, Decoder: dec,
		EncoderBatch: int(min(int64(batch), enc.MaxBatch())), half: img.Type == backend.Float16,
		enc: map[uintptr]*trt.Context{}, dec: map[uintptr]*trt.Context{},
		ws: workspace{dev: dev}}, nil
}

// NewLocaliseStages returns stages that only localise, with the MedLAM engines (medlamEnc
// may be nil): jobs are given a template set and no mask, and Segment fails saying the
// pipeline has no SAM engines. The caller must Close them.
func NewLocaliseStages(dev *kgpu.Device, medlam, medlamEnc *trt.Engine) (*DeviceStages,
	error) {
	if medlam == nil {
		return nil, errors.New("gpu: a localisation pipeline needs the MedLAM engine")
	}
	return &DeviceStages{Dev: dev, MedLAM: medlam, MedLAMEncoder: medlamEnc,
		enc: map[uintptr]*trt.Context{}, dec: map[uintptr]*trt.Context{},
		ws: workspace{dev: dev}}, nil
}

// queryMeta is what Store needs of a loaded query.
type queryMeta struct {
	hdr *nifti.Header
	vol *volume.Volume // geometry only; Data is nil
}

// Load reads the query (without reorientation: method.md 5.1) into pinned memory as
// float32 voxels, i fastest: the NIfTI reader decodes straight into the pinned buffer, which
// is what the scheduler copies to the device (in host byte order, little-endian on every
// CUDA host).
func (d *DeviceStages) Load(ctx context.Context, job Job,
	pinned func(n int) ([]byte, error)) (Loaded, error) {
	img, err := nifti.Read(job.Query, nifti.ReadOptions{Voxels: func(n int) ([]float32,
		error) {
		b, err := pinned(4 * n)
		if err != nil {
			return nil, err
		}
		return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
	}})
	if err != nil {
		return Loaded{}, err
	}
	v := img.Volume
	geom := &volume.Volume{Shape: v.Shape, Spacing: v.Spacing, Affine: v.Affine}
	return Loaded{Shape: v.Shape, VoxelBytes: 4 * len(v.Data), MaskBytes: 2 * len(v.Data),
		Meta: queryMeta{hdr: img.Header, vol: geom}}, nil
}

// Localise returns the boxes of job.Organs when the job gives them, and otherwise localises
// the query on the device with the template set of job.Templates (DeviceLocaliser, opened
// for the first job of a template set and options and kept for the next).
func (d *DeviceStages) Localise(ctx context.Context, ds DevStream, vol DevMem, l Loaded,
	job Job) ([]Organ, *localize.Result, error) {
	if job.Organs != "" {
		organs, err := readOrgans(job.Organs)
		return organs, nil, err
	}
	if job.Templates == "" {
		return nil, nil, errors.New("the job gives neither boxes (organs) nor a template set " +
			"(templates)")
	}
	s, err := kstream(ds)
	if err != nil {
		return nil, nil, err
	}
	v, err := devBuf(vol)
	if err != nil {
		return nil, nil, err
	}
	meta, ok := l.Meta.(queryMeta)
	if !ok {
		return nil, nil, fmt.Errorf("gpu: localise: no query geometry for %s", job.Query)
	}
	loc, err := d.localiser(job)
	if err != nil {
		return nil, nil, err
	}
	res, _, err := loc.Localise(ctx, s, v, meta.vol, job.Query)
	if err != nil {
		return nil, nil, err
	}
	if job.Mask == "" { // localisation only: the boxes go back in res
		return nil, res, nil
	}
	organs, err := OrgansOf(res, l.Shape, job.Query)
	if err != nil {
		return nil, nil, err
	}
	return organs, res, nil
}

// localiser returns the DeviceLocaliser of the job's template set and options, opening it
// (and closing the previous one) when they changed.
func (d *DeviceStages) localiser(job Job) (*DeviceLocaliser, error) {
	if d.MedLAMErr != nil {
		return nil, d.MedLAMErr
	}
	if d.MedLAM == nil {
		return nil, errors.New("no MedLAM engine (model \"medlam\") among the engines: " +
			"build it with build/engines/build.sh, or give the boxes")
	}
	opt := LocalizeOptions{}
	if job.Localize != nil {
		opt = *job.Localize
	}
	key := fmt.Sprintf("%s|%d|%d|%d|%d", job.Templates, opt.Seed, opt.CoarseCrops, opt.Batch,
		d.MedLAMBatch)
	if d.loc != nil && d.locKey == key {
		return d.loc, nil
	}
	old := d.loc
	d.loc, d.locKey = nil, "" // never reuse a localiser whose Close failed
	if err := old.Close(); err != nil {
		return nil, err
	}
	ts, err := localize.LoadTemplateSet(job.Templates, d.MedLAM.Manifest().ONNXSHA256)
	if err != nil {
		return nil, err
	}
	cfg := localize.Config{Seed: opt.Seed, CoarseCrops: opt.CoarseCrops,
		BatchSize: opt.Batch, Logger: slog.Default()}
	loc, err := NewDeviceLocaliser(d.Dev, d.MedLAM, d.MedLAMEncoder, ts, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", job.Templates, err)
	}
	loc.MaxBatch = d.MedLAMBatch
	d.loc, d.locKey = loc, key
	return loc, nil
}

// readOrgans reads a JSON list of organs with their boxes, refusing an empty list.
func readOrgans(path string) ([]Organ, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var organs []Organ
	if err := json.Unmarshal(b, &organs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(organs) == 0 {
		return nil, fmt.Errorf("%s: no organs", path)
	}
	return organs, nil
}

// buf returns the workspace buffer of role, at least n bytes.
func (d *DeviceStages) buf(role string, n int) (*kgpu.Buffer, error) {
	return d.ws.get(role, n)
}

// contexts returns the encoder and decoder contexts of stream s, creating them.
func (d *DeviceStages) contexts(s *kgpu.Stream) (*trt.Context, *trt.Context, error) {
	h := s.Handle()
	if d.enc[h] == nil {
		c, err := d.Encoder.NewContext(h)
		if err != nil {
			return nil, nil, err
		}
		d.enc[h] = c
	}
	if d.dec[h] == nil {
		c, err := d.Decoder.NewContext(h)
		if err != nil {
			return nil, nil, err
		}
		d.dec[h] = c
	}
	return d.enc[h], d.dec[h], nil
}

// Segment runs method.md 5.2 to 5.6 on the device: the window of the whole volume, then
// per batch of slices the fused preprocessing, the encoder, the decoder on every box of the
// batch's slices and the mask post-processing into mask. It waits for the stream before
// returning, so that its staging tables and workspace can be reused.
func (d *DeviceStages) Segment(ctx context.Context, ds DevStream, vol DevMem, l Loaded,
	organs []Organ, mask DevMem) error {
	if d.Encoder == nil || d.Decoder == nil {
		return errors.New("this pipeline only localises: it has no SAM engines")
	}
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
	plan, err := segPlan(organs, l.Shape, d.EncoderBatch)
	if err != nil {
		return err
	}
	enc, dec, err := d.contexts(s)
	if err != nil {
		return err
	}
	n := l.Shape[0] * l.Shape[1] * l.Shape[2]
	if err := s.Fill(m, 0); err != nil {
		return err
	}

	// The window of the whole volume (min-max over it), as uint8.
	win, err := d.buf("window", n)
	if err != nil {
		return err
	}
	scratch, err := d.buf("minmax", 8)
	if err != nil {
		return err
	}
	if err := s.SAMWindow(win, v, n, false, scratch); err != nil {
		return err
	}

	// Staging tables in pinned memory, given back once the stream has drained.
	pool := d.Dev.Pool()
	var hosts []*kgpu.HostBuffer
	defer func() {
		if s.Sync() == nil {
			for _, h := range hosts {
				pool.PutHost(h)
			}
		}
	}()
	upload := func(role string, fill func(h *kgpu.HostBuffer), nb int) (*kgpu.Buffer, error) {
		h, err := pool.Host(nb)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
		fill(h)
		b, err := d.buf(role, nb)
		if err != nil {
			return nil, err
		}
		return b, s.CopyToDevice(b, h, nb)
	}

	elem := 4
	if d.half {
		elem = 2
	}
	for _, p := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.segmentBatch(s, enc, dec, win, m, l.Shape, p, elem, upload); err != nil {
			return err
		}
	}
	return nil
}

// segmentBatch encodes one batch of slices, decodes its boxes and scatters the masks.
func (d *DeviceStages) segmentBatch(s *kgpu.Stream, enc, dec *trt.Context, win,
	mask *kgpu.Buffer, shape [3]int, p segBatch, elem int,
	upload func(string, func(*kgpu.HostBuffer), int) (*kgpu.Buffer, error)) error {
	b := len(p.Slices)
	images, err := d.buf("images", b*3*samS*samS*elem)
	if err != nil {
		return err
	}
	ws, err := d.buf("preprocess", kgpu.SAMPreprocessWorkspace(shape[0], shape[1]))
	if err != nil {
		return err
	}
	if err := s.SAMPreprocess(images, d.half, win, shape, p.Slices, ws); err != nil {
		return err
	}
	emb, err := d.buf("embeddings", b*embBytes)
	if err != nil {
		return err
	}
	if _, err := enc.Prepare(map[string][]int64{
		segment.InputImages: {int64(b), 3, samS, samS}}); err != nil {
		return err
	}
	if err := enc.Bind(segment.InputImages, images.Ptr(), images.Bytes()); err != nil {
		return err
	}
	if err := enc.Bind(segment.OutputEmbedding, emb.Ptr(), emb.Bytes()); err != nil {
		return err
	}
	if err := enc.Enqueue(); err != nil {
		return err
	}

	// Every mask of the batch: its box, label and slice tables, then the decoder in chunks
	// of at most the engine's batch, writing into one logits buffer.
	masks := len(p.Boxes)
	boxes, err := upload("boxes", func(h *kgpu.HostBuffer) {
		f := h.Float32s()
		for i, bx := range p.Boxes {
			copy(f[4*i:], bx[:])
		}
	}, 16*masks)
	if err != nil {
		return err
	}
	for _, k := range p.Of {
		if k < 0 || k >= b {
			return fmt.Errorf("gpu: decoder: slice %d of a batch of %d", k, b)
		}
	}
	of, err := upload("decoder slices", func(h *kgpu.HostBuffer) {
		v := h.Int32s()
		for i, k := range p.Of {
			v[i] = int32(k)
		}
	}, 4*masks)
	if err != nil {
		return err
	}
	logits, err := d.buf("logits", masks*maskBytes)
	if err != nil {
		return err
	}
	chunk := int(d.Decoder.MaxBatch())
	for lo := 0; lo < masks; lo += chunk {
		hi := min(lo+chunk, masks)
		if err := d.decode(s, dec, emb, boxes, of, logits, b, lo, hi); err != nil {
			return err
		}
	}
	labels, err := upload("labels", func(h *kgpu.HostBuffer) {
		copy(h.Int16s(), p.Labels)
	}, 2*masks)
	if err != nil {
		return err
	}
	starts, err := upload("starts", func(h *kgpu.HostBuffer) {
		copy(h.Int32s(), p.Starts)
	}, 4*len(p.Starts))
	if err != nil {
		return err
	}
	planes, err := upload("planes", func(h *kgpu.HostBuffer) {
		z := h.Int32s()
		for i, k := range p.Slices {
			z[i] = int32(k)
		}
	}, 4*b)
	if err != nil {
		return err
	}
	prob, err := d.buf("prob", masks*maskBytes)
	if err != nil {
		return err
	}
	return s.SAMMaskPost(kgpu.MaskPostArgs{Volume: mask, Shape: shape, Logits: logits,
		LowRes: lowRes, Masks: masks, Labels: labels, Starts: starts, Z: planes, Slices: b,
		Prob: prob})
}

// decode runs the decoder on masks [lo, hi) of a batch of slices encoded into emb: each
// mask's slice embedding (its entry of the uploaded slice indices of, each below slices) is
// gathered next to the others (one kernel), then one decoder call writes their logits.
func (d *DeviceStages) decode(s *kgpu.Stream, dec *trt.Context, emb, boxes, of,
	logits *kgpu.Buffer, slices, lo, hi int) error {
	n := hi - lo
	rep, err := d.buf("decoder embeddings", n*embBytes)
	if err != nil {
		return err
	}
	batch, err := emb.View(0, slices*embBytes) // only this batch's embeddings
	if err != nil {
		return err
	}
	idx, err := of.View(4*lo, 4*n)
	if err != nil {
		return err
	}
	if err := s.GatherRows(rep, batch, embBytes, idx, n); err != nil {
		return err
	}
	bv, err := boxes.View(16*lo, 16*n)
	if err != nil {
		return err
	}
	lv, err := logits.View(maskBytes*lo, maskBytes*n)
	if err != nil {
		return err
	}
	iou, err := d.buf("iou", 4*n)
	if err != nil {
		return err
	}
	if _, err := dec.Prepare(map[string][]int64{
		segment.OutputEmbedding: {int64(n), 256, 64, 64},
		segment.InputBoxes:      {int64(n), 4}}); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		buf  *kgpu.Buffer
	}{{segment.OutputEmbedding, rep}, {segment.InputBoxes, bv}, {segment.OutputMasks, lv},
		{segment.OutputIoU, iou}} {
		if err := dec.Bind(b.name, b.buf.Ptr(), b.buf.Bytes()); err != nil {
			return err
		}
	}
	return dec.Enqueue()
}

// Store writes the label map with the query's geometry (uint8 when every label fits).
func (d *DeviceStages) Store(ctx context.Context, job Job, l Loaded, organs []Organ,
	mask []byte) error {
	meta, ok := l.Meta.(queryMeta)
	if !ok {
		return fmt.Errorf("gpu: store: no query header for %s", job.Query)
	}
	out := &volume.Volume{Data: make([]float32, len(mask)/2), Shape: meta.vol.Shape,
		Spacing: meta.vol.Spacing, Affine: meta.vol.Affine}
	for i := range out.Data {
		out.Data[i] = float32(int16(binary.LittleEndian.Uint16(mask[2*i:])))
	}
	dt := nifti.Uint8
	for _, o := range organs {
		if o.Label > 255 {
			dt = nifti.Int16
		}
	}
	return nifti.Write(job.Mask, out, nifti.WriteOptions{Datatype: dt, Like: meta.hdr})
}

// Close frees the workspace, the TensorRT contexts and the localiser. The streams must
// have drained.
func (d *DeviceStages) Close() error {
	errs := []error{d.loc.Close()}
	d.loc, d.locKey = nil, ""
	errs = append(errs, d.ws.close())
	for _, m := range []map[uintptr]*trt.Context{d.enc, d.dec} {
		for h, c := range m {
			errs = append(errs, c.Close())
			delete(m, h)
		}
	}
	return errors.Join(errs...)
}
