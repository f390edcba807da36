package localize

import (
	"context"
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Steps are the parts of a query that touch its prepared voxels or run the network:
// reading the grid at candidate coarse centres, the coarse step's positions and the
// refinement's offsets. LocateWith drives them and does the arithmetic in between, so every
// implementation localises the same way: HostSteps on a Grid in memory with any
// backend.Model, or engine/gpu's device steps, where the grid, the crops, the features and
// the similarity search stay on the GPU and only positions and offsets come back.
// Points are (z, y, x) in the padded frame (grid voxel + Pad).
type Steps interface {
	// ModelSHA256 identifies the full network's weights (a template set must record it).
	ModelSHA256() string
	// Values returns the grid's value at each point (0 in the padding).
	Values(points [][3]int) ([]float32, error)
	// Positions returns the position vector the network gives the 64^3 crop centred on
	// each centre.
	Positions(ctx context.Context, centres [][3]int) ([][3]float32, error)
	// Offsets returns for each template point p the similarity search's offset (z, y, x)
	// for the crop centred on centres[p], searched with p's template kernels.
	Offsets(ctx context.Context, centres [][3]int) ([][3]int, error)
}

// HostSteps are the Steps of a Grid in host memory: crops cut on the CPU, networks run
// through backend.Model in batches of Config.BatchSize, the search by Config.Kernels.
type HostSteps struct {
	Net    *Network
	Set    *TemplateSet
	Query  *Grid
	Config Config
}

var _ Steps = (*HostSteps)(nil)

// ModelSHA256 is Net.ModelSHA256.
func (h *HostSteps) ModelSHA256() string { return h.Net.ModelSHA256 }

// Values reads the grid.
func (h *HostSteps) Values(points [][3]int) ([]float32, error) {
	out := make([]float32, len(points))
	if err := kernels.Gather(out, h.Query.Vol.Data, h.Query.Dims(), points, Pad); err != nil {
		return nil, fmt.Errorf("localize: %s: %w", h.Query.Source, err)
	}
	return out, nil
}

// Positions runs the encoder (the full network when there is none) on the crops.
func (h *HostSteps) Positions(ctx context.Context, centres [][3]int) ([][3]float32, error) {
	model := h.Net.Encoder
	if model == nil {
		model = h.Net.Full
	}
	out := make([][3]float32, 0, len(centres))
	err := runBatched(ctx, model, len(centres), h.Config.withDefaults().BatchSize,
		[]string{OutputPosition},
		func(p int, dst []float32) error {
			h.Query.cropPadded(centres[p], dst)
			return nil
		},
		func(first int, outs []backend.Tensor) error {
			if err := checkPosition(outs[0]); err != nil {
				return err
			}
			for i := 0; i+3 <= len(outs[0].Data); i += 3 {
				out = append(out, [3]float32(outs[0].Data[i:i+3]))
			}
			return nil
		})
	return out, err
}

// Offsets runs the full network on the crops and the similarity search on its features.
func (h *HostSteps) Offsets(ctx context.Context, centres [][3]int) ([][3]int, error) {
	search, err := newSearch(h.Config.Kernels, h.Set)
	if err != nil {
		return nil, err
	}
	defer search.Close()
	out := make([][3]int, 0, len(centres))
	err = runBatched(ctx, h.Net.Full, len(centres), h.Config.withDefaults().BatchSize,
		OutputFeatures[:],
		func(p int, dst []float32) error {
			h.Query.cropPadded(centres[p], dst)
			return nil
		},
		func(first int, outs []backend.Tensor) error {
			off, err := searchOffsets(search, h.Set, first, outs)
			out = append(out, off...)
			return err
		})
	return out, err
}
