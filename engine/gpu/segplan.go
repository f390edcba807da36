package gpu

import (
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
)

// The host-side plan of the device segmentation: which slices to encode, in which batches,
// and which boxes to decode on each. It is pure Go so that it is tested here; the device
// stage (stages_cuda.go) uploads its small tables and runs the kernels and engines on it.

// segBatch is one encoder batch and the masks decoded on its slices.
type segBatch struct {
	Slices []int        // planes k to encode, ascending and distinct
	Boxes  [][4]float32 // prompt box of every mask (x0, y0, x1, y1 in 1024 pixels)
	Labels []int16      // label of every mask
	Of     []int        // index in Slices of every mask's slice
	Starts []int32      // masks of Slices[s] are [Starts[s], Starts[s+1])
}

// segPlan splits the slices the organs' boxes cover (method.md 5.4: the same box on every
// slice from its zmin to its zmax; a chunk's box on the chunk's slices; prompt boxes from
// segment.Box1024, as on the CPU path) into batches of at
// most batch slices. Masks are grouped by slice, in organ order within a slice, which is
// the order the mask post-processing breaks ties in; an organ has one mask per slice (the
// later chunk's where chunks overlap). Boxes outside the volume, inverted boxes, labels
// outside int16 and repeated labels are refused, naming the organ.
func segPlan(organs []Organ, shape [3]int, batch int) ([]segBatch, error) {
	if batch < 1 {
		return nil, fmt.Errorf("gpu: segment plan: batch %d", batch)
	}
	type mask struct {
		box   [4]float32
		label int16
	}
	perK := make(map[int][]mask)
	seen := make(map[int]bool)
	for i, o := range organs {
		if o.Label < 1 || o.Label > math.MaxInt16 {
			return nil, fmt.Errorf("gpu: organ %d (%s): label %d outside [1, %d]", i, o.Name,
				o.Label, math.MaxInt16)
		}
		if seen[o.Label] {
			return nil, fmt.Errorf("gpu: organ %d (%s): label %d given twice", i, o.Name,
				o.Label)
		}
		seen[o.Label] = true
		boxes := o.Chunks
		if len(boxes) == 0 {
			boxes = []eval.Box{o.Box}
		}
		// One prompt per organ and slice: where chunks share a slice, the later chunk's
		// box is used, as in the reference and on the CPU path (segment.Segment).
		mine := make(map[int][4]float32)
		for _, b := range boxes {
			if err := checkBox(b, shape); err != nil {
				return nil, fmt.Errorf("gpu: organ %d (%s, label %d): %w", i, o.Name, o.Label,
					err)
			}
			pb := segment.Box1024(b, shape[0], shape[1])
			for k := b.Min[2]; k <= b.Max[2]; k++ {
				mine[k] = pb
			}
		}
		for k, pb := range mine {
			perK[k] = append(perK[k], mask{pb, int16(o.Label)})
		}
	}
	var out []segBatch
	var cur *segBatch
	for k := range shape[2] {
		ms, ok := perK[k]
		if !ok {
			continue
		}
		if cur == nil || len(cur.Slices) == batch {
			out = append(out, segBatch{Starts: []int32{0}})
			cur = &out[len(out)-1]
		}
		s := len(cur.Slices)
		cur.Slices = append(cur.Slices, k)
		for _, m := range ms {
			cur.Boxes = append(cur.Boxes, m.box)
			cur.Labels = append(cur.Labels, m.label)
			cur.Of = append(cur.Of, s)
		}
		cur.Starts = append(cur.Starts, int32(len(cur.Boxes)))
	}
	return out, nil
}

// checkBox refuses a box that is inverted or outside a volume of shape.
func checkBox(b eval.Box, shape [3]int) error {
	if !b.Valid() {
		return fmt.Errorf("box %v to %v is inverted", b.Min, b.Max)
	}
	for a := range 3 {
		if b.Min[a] < 0 || b.Max[a] >= shape[a] {
			return fmt.Errorf("box %v to %v outside the volume of shape %v", b.Min, b.Max,
				shape)
		}
	}
	return nil
}
