//go:build cuda

package gpu

/*
#include "similarity.cuh"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// DefaultSimilarityWorkspace bounds the device workspace of a SimilaritySearch: the points
// of a batch are handled in chunks that fit it. The correlation products are never stored
// (kernels/cuda/similarity.cu), so a point needs only its inverse norms and score maps,
// about 2.3 MB at the MedLAM scales: a chunk is a few hundred points.
const DefaultSimilarityWorkspace = 1 << 30

// SimilaritySearch is kernels.SimilaritySearch on a GPU. It owns a device workspace,
// released by Close, and is not safe for concurrent use; distinct values may run
// concurrently (their work is serialised on the device's worker).
type SimilaritySearch struct {
	d       *Device
	scales  []C.mlk_sim_scale
	patch   int
	chunk   int // points per chunk
	ws      *Buffer
	wsBytes int
}

// NewSimilaritySearch returns a search over scales with a fused map of patch^3 voxels, as
// kernels.NewSimilaritySearch (same argument checks), whose workspace stays under
// DefaultSimilarityWorkspace bytes (one point's chunk at least). The caller must Close it.
func (d *Device) NewSimilaritySearch(scales []kernels.SimilarityScale,
	patch int) (*SimilaritySearch, error) {
	// The CPU constructor is the one statement of the argument rules.
	if _, err := kernels.NewSimilaritySearch(scales, patch); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	s := &SimilaritySearch{d: d, patch: patch}
	for _, sc := range scales {
		s.scales = append(s.scales, C.mlk_sim_scale{size: C.int(sc.Size),
			kernel: C.int(sc.Kernel), channels: C.int(sc.Channels)})
	}
	per := s.workspace(1)
	if per == 0 {
		return nil, &Error{Op: "similarity search", Code: codeInvalid,
			Message: "scales refused by the native check"}
	}
	s.chunk = max(1, min(DefaultSimilarityWorkspace/per, 65535))
	return s, nil
}

func (s *SimilaritySearch) workspace(chunk int) int {
	return int(C.mlk_similarity_workspace(&s.scales[0], C.int(len(s.scales)), C.int(chunk)))
}

// FLOPs returns the floating-point operations of the correlations of points points (two
// per multiply-add of the channel reductions), for reporting TFLOP/s.
func (s *SimilaritySearch) FLOPs(points int) float64 {
	var f float64
	for _, sc := range s.scales {
		k3 := float64(sc.kernel) * float64(sc.kernel) * float64(sc.kernel)
		s3 := float64(sc.size) * float64(sc.size) * float64(sc.size)
		f += 2 * float64(sc.channels) * k3 * s3
	}
	return f * float64(points)
}

// ensure grows the workspace for a batch of points.
func (s *SimilaritySearch) ensure(points int) (chunk int, err error) {
	chunk = min(s.chunk, points)
	need := s.workspace(chunk)
	if s.ws != nil && s.wsBytes >= need {
		return chunk, nil
	}
	if err := s.ws.Close(); err != nil {
		return 0, err
	}
	s.ws = nil
	if s.ws, err = s.d.Alloc(need); err != nil {
		return 0, err
	}
	s.wsBytes = need
	return chunk, nil
}

// SearchDevice enqueues on st the search of points points whose raw features and kernels
// are in device buffers (scale i: features[i] [P][C][S^3], kernels[i] [P][C][k^3]); out
// (8 bytes per point) receives each point's C-order index of the first maximum (int32, -1
// when the map holds only NaN) and its score (float32).
func (s *SimilaritySearch) SearchDevice(st *Stream, features, kern []*Buffer, points int,
	out *Buffer) error {
	f, err := s.searchOp(st, features, kern, points, out)
	if err != nil {
		return err
	}
	return st.enqueue("similarity search", f)
}

func (s *SimilaritySearch) searchOp(st *Stream, features, kern []*Buffer, points int,
	out *Buffer) (nativeOp, error) {
	if points < 1 || len(features) != len(s.scales) || len(kern) != len(s.scales) ||
		out.bytes < 8*points {
		return nil, &Error{Op: "similarity search", Code: codeInvalid, Message: fmt.Sprintf(
			"%d points, %d feature and %d kernel buffers for %d scales, out of %d bytes",
			points, len(features), len(kern), len(s.scales), out.bytes)}
	}
	fp := make([]C.uint64_t, len(s.scales))
	kp := make([]C.uint64_t, len(s.scales))
	for i, sc := range s.scales {
		c, sz, k := int(sc.channels), int(sc.size), int(sc.kernel)
		if features[i].bytes < 4*points*c*sz*sz*sz || kern[i].bytes < 4*points*c*k*k*k {
			return nil, &Error{Op: "similarity search", Code: codeInvalid, Message: fmt.Sprintf(
				"scale %d: buffers too small for %d points", i, points)}
		}
		fp[i], kp[i] = features[i].ptr, kern[i].ptr
	}
	chunk, err := s.ensure(points)
	if err != nil {
		return nil, err
	}
	return func(in *C.mlk_copy, nin C.int, cout *C.mlk_copy, nout C.int,
		cst *C.mlk_status) C.int {
		return C.mlk_similarity_search_batch(s.d.dev(), st.s, in, nin, cout, nout,
			&s.scales[0], C.int(len(s.scales)), C.int(s.patch), &fp[0], &kp[0],
			C.int(points), C.int(chunk), s.ws.ptr, C.size_t(s.wsBytes), out.ptr, cst)
	}, nil
}

// Search is kernels.SimilaritySearch.Search on the GPU: same arguments, same results up to
// float32 rounding of the scores (the correlation sums in another order). It stages the
// slices through pooled pinned and device buffers and makes one native call for the whole
// batch: copies in, search, copy of the results out, wait.
func (s *SimilaritySearch) Search(features, kern [][]float32,
	out []kernels.SimilarityMatch) error {
	points := len(out)
	if points == 0 {
		return fmt.Errorf("gpu: similarity search over zero points")
	}
	if len(features) != len(s.scales) || len(kern) != len(s.scales) {
		return fmt.Errorf("gpu: similarity search has %d scales, got %d feature and %d"+
			" kernel slices", len(s.scales), len(features), len(kern))
	}
	for i, sc := range s.scales {
		c, sz, k := int(sc.channels), int(sc.size), int(sc.kernel)
		if len(features[i]) != points*c*sz*sz*sz {
			return fmt.Errorf("gpu: similarity scale %d: features hold %d values, want %d"+
				" (points %d x channels %d x %d^3)", i, len(features[i]), points*c*sz*sz*sz,
				points, c, sz)
		}
		if len(kern[i]) != points*c*k*k*k {
			return fmt.Errorf("gpu: similarity scale %d: kernels hold %d values, want %d"+
				" (points %d x channels %d x %d^3)", i, len(kern[i]), points*c*k*k*k,
				points, c, k)
		}
	}
	b := s.d.newBatch()
	defer b.release()
	stage := func(src []float32) (*Buffer, error) {
		h, buf, err := b.input(4 * len(src))
		if err != nil {
			return nil, err
		}
		copy(h.Float32s(), src)
		return buf, nil
	}
	fb := make([]*Buffer, len(s.scales))
	kb := make([]*Buffer, len(s.scales))
	var err error
	for i := range s.scales {
		if fb[i], err = stage(features[i]); err != nil {
			return err
		}
		if kb[i], err = stage(kern[i]); err != nil {
			return err
		}
	}
	hres, res, err := b.output(8 * points)
	if err != nil {
		return err
	}
	f, err := s.searchOp(s.d.stream, fb, kb, points, res)
	if err != nil {
		return err
	}
	if err := b.run("similarity search", f); err != nil {
		return err
	}
	return decodeMatches(hres.Bytes()[:8*points], s.patch, out)
}

// decodeMatches turns mlk_sim_result records (little-endian int32 index, float32 score)
// into matches.
func decodeMatches(b []byte, patch int, out []kernels.SimilarityMatch) error {
	for p := range out {
		idx := int32(binary.LittleEndian.Uint32(b[8*p:]))
		score := math.Float32frombits(binary.LittleEndian.Uint32(b[8*p+4:]))
		if idx < 0 || int(idx) >= patch*patch*patch {
			return fmt.Errorf("gpu: similarity point %d: the score map has no maximum (NaN in"+
				" its features or kernels)", p)
		}
		q := int(idx)
		m := kernels.SimilarityMatch{Index: [3]int{q / (patch * patch), q / patch % patch,
			q % patch}, Score: score}
		for a := range 3 {
			m.Offset[a] = m.Index[a] - patch/2 + 1
		}
		out[p] = m
	}
	return nil
}

// Close frees the workspace. It is idempotent and nil-safe.
func (s *SimilaritySearch) Close() error {
	if s == nil {
		return nil
	}
	err := s.ws.Close()
	s.ws = nil
	return err
}

// Decode turns the results SearchDevice wrote (8 bytes per point, copied to the host) into
// matches, as Search returns them.
func (s *SimilaritySearch) Decode(results []byte, out []kernels.SimilarityMatch) error {
	if len(results) < 8*len(out) {
		return fmt.Errorf("gpu: similarity results of %d bytes for %d points", len(results),
			len(out))
	}
	return decodeMatches(results[:8*len(out)], s.patch, out)
}
