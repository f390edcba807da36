package segment

import (
	"fmt"
	"slices"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// decoder runs a SAM prompt encoder + mask decoder of either layout on one slice.
type decoder struct {
	model  backend.Model
	layout Layout
	h, w   int // the slice's size, for the public layout's orig_im_size
}

// decode returns the single-mask low-resolution logits of every box of one slice
// ([len(boxes), lowRes, lowRes]), lowRes, each box's predicted IoU and the number of decoder
// calls it made. emb is the slice's embedding of shape embShape ([C, H, W]).
func (d decoder) decode(embShape []int64, emb []float32, boxes []sliceBox) ([]float32, int,
	[]float32, int, error) {
	if d.layout == LayoutPublic {
		return d.decodePublic(embShape, emb, boxes)
	}
	// A model that takes fewer boxes per call (an engine's profile) gets them in chunks.
	if most := backend.CapBatch(d.model, len(boxes)); most < len(boxes) {
		var logits, ious []float32
		lowRes, calls := 0, 0
		for lo := 0; lo < len(boxes); lo += most {
			l, r, iou, c, err := d.decode(embShape, emb, boxes[lo:min(lo+most, len(boxes))])
			calls += c
			if err != nil {
				return nil, 0, nil, calls, err
			}
			logits, ious, lowRes = append(logits, l...), append(ious, iou...), r
		}
		return logits, lowRes, ious, calls, nil
	}
	n := len(boxes)
	// The embedding is repeated once per box: the contract pairs embedding b with box b,
	// and the mask decoder repeats it per prompt internally anyway.
	embs := make([]float32, 0, n*len(emb))
	coords := make([]float32, 0, 4*n)
	for _, b := range boxes {
		embs = append(embs, emb...)
		coords = append(coords, b.box[:]...)
	}
	shape := append([]int64{int64(n)}, embShape...)
	outs, err := d.model.Run([]backend.Tensor{
		{Name: OutputEmbedding, Shape: shape, Data: embs},
		{Name: InputBoxes, Shape: []int64{int64(n), 4}, Data: coords},
	}, []string{OutputMasks, OutputIoU})
	if err != nil {
		return nil, 0, nil, 1, fmt.Errorf("decoder: %w", err)
	}
	m, iou := outs[0], outs[1]
	if len(m.Shape) != 4 || m.Shape[0] != int64(n) || m.Shape[1] != 1 ||
		m.Shape[2] != m.Shape[3] || int64(len(m.Data)) != backend.Elements(m.Shape) ||
		len(iou.Data) != n {
		return nil, 0, nil, 1, fmt.Errorf("decoder: masks %v and iou_predictions %v for %d "+
			"boxes; want [%d,1,L,L] and [%d,1]", m.Shape, iou.Shape, n, n, n)
	}
	return m.Data, int(m.Shape[2]), iou.Data, 1, nil
}

// decodePublic runs the public layout once per box (its embedding batch is 1) and keeps
// channel 0 of low_res_masks and iou_predictions, the single-mask output.
func (d decoder) decodePublic(embShape []int64, emb []float32, boxes []sliceBox) ([]float32,
	int, []float32, int, error) {
	var maskShape []int64
	for _, in := range d.model.Inputs() {
		if in.Name == InputMaskInput {
			maskShape = slices.Clone(in.Shape)
		}
	}
	for i := range maskShape {
		if maskShape[i] < 1 {
			maskShape[i] = 1
		}
	}
	maskIn := make([]float32, backend.Elements(maskShape))
	var logits, ious []float32
	lowRes := 0
	for n, b := range boxes {
		outs, err := d.model.Run([]backend.Tensor{
			{Name: OutputEmbedding, Shape: append([]int64{1}, embShape...), Data: emb},
			{Name: InputPointCoords, Shape: []int64{1, 2, 2}, Data: b.box[:]},
			{Name: InputPointLabels, Shape: []int64{1, 2}, Data: []float32{2, 3}},
			{Name: InputMaskInput, Shape: maskShape, Data: maskIn},
			{Name: InputHasMask, Shape: []int64{1}, Data: []float32{0}},
			{Name: InputOrigSize, Shape: []int64{2}, Data: []float32{float32(d.h),
				float32(d.w)}},
		}, []string{OutputLowRes, OutputIoU})
		if err != nil {
			return nil, 0, nil, n + 1, fmt.Errorf("public decoder: %w", err)
		}
		m, iou := outs[0], outs[1]
		if len(m.Shape) == 4 && m.Shape[1] == 1 {
			return nil, 0, nil, n + 1, errSingleMask // declared dynamic, found at run time
		}
		if len(m.Shape) != 4 || m.Shape[0] != 1 || m.Shape[1] < 1 || m.Shape[2] != m.Shape[3] ||
			int64(len(m.Data)) != backend.Elements(m.Shape) || len(iou.Data) < 1 ||
			(lowRes != 0 && m.Shape[2] != int64(lowRes)) {
			return nil, 0, nil, n + 1, fmt.Errorf("public decoder: low_res_masks %v, "+
				"iou_predictions %v (%d values); want [1,K,L,L] with L the same for every "+
				"box, and [1,K]", m.Shape, iou.Shape, len(m.Data))
		}
		lowRes = int(m.Shape[2])
		logits = append(logits, m.Data[:lowRes*lowRes]...)
		ious = append(ious, iou.Data[0])
	}
	return logits, lowRes, ious, len(boxes), nil
}
