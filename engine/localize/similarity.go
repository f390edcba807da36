package localize

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Scales returns the similarity search's scales for the template set's kernel shapes (the
// feature maps of edge 8*k for kernels of edge k), to search with a fused map of Patch^3.
func (ts *TemplateSet) Scales() []kernels.SimilarityScale {
	scales := make([]kernels.SimilarityScale, 3)
	for s := 0; s < 3; s++ {
		k := ts.Edges[s]
		scales[s] = kernels.SimilarityScale{Size: k * Patch / 8, Kernel: k,
			Channels: ts.Channels[s]}
	}
	return scales
}

// newSearch returns the multi-scale similarity search for the template set's kernel shapes,
// made by k (CPUKernels when nil). The caller closes it.
func newSearch(k Kernels, ts *TemplateSet) (Searcher, error) {
	search, err := kernelsOr(k).NewSimilaritySearch(ts.Scales(), Patch)
	if err != nil {
		return nil, fmt.Errorf("localize: %w", err)
	}
	return search, nil
}

// searchOffsets runs the similarity search for the batch of points that starts at point
// first, whose feature maps are outs (feature0..2 of the full network), and returns each
// point's offset (argmax - 32 + 1, z, y, x).
func searchOffsets(search Searcher, ts *TemplateSet, first int,
	outs []backend.Tensor) ([][3]int, error) {
	b := int(outs[0].Shape[0])
	feats := make([][]float32, 3)
	kern := make([][]float32, 3)
	for s := 0; s < 3; s++ {
		c, e, err := featureShape(outs[s])
		if err != nil {
			return nil, err
		}
		if c != ts.Channels[s] || kernelEdge(e) != ts.Edges[s] {
			return nil, fmt.Errorf("%w: localize: feature %d has %d channels of %d^3, the "+
				"template set %d channels with %d^3 kernels", backend.ErrShape, s, c, e,
				ts.Channels[s], ts.Edges[s])
		}
		feats[s] = outs[s].Data
		kv := c * ts.Edges[s] * ts.Edges[s] * ts.Edges[s]
		kern[s] = ts.Kernels[s][first*kv : (first+b)*kv]
	}
	m := make([]kernels.SimilarityMatch, b)
	if err := search.Search(feats, kern, m); err != nil {
		return nil, fmt.Errorf("localize: %w", err)
	}
	off := make([][3]int, b)
	for i := range m {
		off[i] = m[i].Offset
	}
	return off, nil
}
