package localize

import (
	"context"
	"fmt"
	"slices"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// Tensor names of the MedLAM model contract (engine/backend manifests of "medlam" and
// "medlam-encoder").
const (
	InputPatch     = "patch"
	OutputPosition = "position"
)

// OutputFeatures are the feature-map outputs of the full MedLAM network, coarse to fine
// (16^3, 32^3, 64^3 for a 64^3 patch).
var OutputFeatures = [3]string{"feature0", "feature1", "feature2"}

// Patch is the network's input patch edge in voxels, and Pad the zero padding of the method
// (half a patch).
const (
	Patch = 64
	Pad   = Patch / 2
)

const patchVoxels = Patch * Patch * Patch

// Network is the MedLAM network as the localiser uses it. The localiser does not own the
// models: whoever opened them closes them. A Network may be shared by calls that do not run
// at the same time; concurrent use is safe only if the models' Run is.
type Network struct {
	// Full maps patch [B,1,64,64,64] to position [B,3] and feature0..2 [B,C,s,s,s].
	Full backend.Model
	// Encoder maps patch to position alone (the encoder and regression head); when nil the
	// coarse step runs Full and asks for the position only.
	Encoder backend.Model
	// ModelSHA256 identifies Full's weights (its manifest's digest). Template sets record it
	// and a query refuses a template set computed by another model.
	ModelSHA256 string
}

func (n *Network) check() error {
	if n == nil || n.Full == nil {
		return fmt.Errorf("localize: no network")
	}
	if n.ModelSHA256 == "" {
		return fmt.Errorf("localize: network has no model digest (Network.ModelSHA256)")
	}
	if err := hasTensors(n.Full, "full model", append([]string{OutputPosition},
		OutputFeatures[:]...)); err != nil {
		return err
	}
	if n.Encoder != nil {
		return hasTensors(n.Encoder, "encoder model", []string{OutputPosition})
	}
	return nil
}

func hasTensors(m backend.Model, what string, outs []string) error {
	if !slices.ContainsFunc(m.Inputs(), func(t backend.TensorInfo) bool {
		return t.Name == InputPatch
	}) {
		return fmt.Errorf("localize: %s has no input %q", what, InputPatch)
	}
	for _, o := range outs {
		if !slices.ContainsFunc(m.Outputs(), func(t backend.TensorInfo) bool {
			return t.Name == o
		}) {
			return fmt.Errorf("localize: %s has no output %q", what, o)
		}
	}
	return nil
}

// runBatched evaluates model on n patches in batches of at most batch. fill writes patch
// p's 64^3 voxels into dst; visit receives each batch's outputs (in the order of names),
// with first the index of the batch's first patch. Memory is bounded by one batch of inputs
// and outputs.
func runBatched(ctx context.Context, model backend.Model, n, batch int, names []string,
	fill func(p int, dst []float32) error,
	visit func(first int, outs []backend.Tensor) error) error {
	if batch <= 0 {
		batch = n
	}
	batch = min(backend.CapBatch(model, batch), n)
	in := make([]float32, batch*patchVoxels)
	for first := 0; first < n; first += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := min(batch, n-first)
		for i := 0; i < b; i++ {
			if err := fill(first+i, in[i*patchVoxels:(i+1)*patchVoxels]); err != nil {
				return err
			}
		}
		t := backend.Tensor{Name: InputPatch, Shape: []int64{int64(b), 1, Patch, Patch, Patch},
			Data: in[:b*patchVoxels]}
		outs, err := model.Run([]backend.Tensor{t}, names)
		if err != nil {
			return fmt.Errorf("localize: network on patches %d-%d: %w", first, first+b-1, err)
		}
		if len(outs) != len(names) {
			return fmt.Errorf("localize: network returned %d outputs, asked for %d",
				len(outs), len(names))
		}
		for i, o := range outs {
			if len(o.Shape) == 0 || o.Shape[0] != int64(b) ||
				backend.Elements(o.Shape) != int64(len(o.Data)) {
				return fmt.Errorf("%w: localize: output %q has shape %v and %d values for batch %d",
					backend.ErrShape, names[i], o.Shape, len(o.Data), b)
			}
		}
		if err := visit(first, outs); err != nil {
			return err
		}
	}
	return nil
}

// featureShape checks a feature output [B,C,s,s,s] and returns C and s.
func featureShape(t backend.Tensor) (c, s int, err error) {
	if len(t.Shape) != 5 || t.Shape[2] != t.Shape[3] || t.Shape[3] != t.Shape[4] ||
		t.Shape[1] <= 0 || t.Shape[2] < 8 || t.Shape[2]%8 != 0 || t.Shape[2] > Patch {
		return 0, 0, fmt.Errorf("%w: localize: feature %q has shape %v, want [B,C,s,s,s] "+
			"with s a multiple of 8 up to %d", backend.ErrShape, t.Name, t.Shape, Patch)
	}
	return int(t.Shape[1]), int(t.Shape[2]), nil
}

// kernelEdge is the edge of the centre crop taken from a feature map of edge s: the
// method's 8^3 centre of the 64^3 patch, scaled to the map (2, 4, 8 for 16, 32, 64).
func kernelEdge(s int) int { return 8 * s / Patch }
