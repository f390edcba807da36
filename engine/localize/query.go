package localize

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// Spacing is the grid spacing of the method, in millimetres.
const Spacing = 3.0

// DistanceRatio maps tanh of a position-vector difference to millimetres, (z, y, x).
var DistanceRatio = [3]float64{1500, 600, 600}

// Constants of the coarse step (method.md section 4.2).
const (
	coarseJitter  = 10             // crop centres in [S/2 - 10, S/2 + 10) of the padded extent S
	airThreshold  = 0.001          // a crop centre below this (normalised) is air and redrawn
	maxRedraws    = 10000          // draws before giving up on a volume that is air near its centre
	rngStreamSalt = 0x6d65646c616d // second PCG word, fixed so equal seeds agree
)

// Points holds a query's template points at each stage, (z, y, x) in the padded frame of
// the prepared grid (grid voxel + 32).
type Points struct {
	// Initial are the coarse step's estimates, Clamped the refinement's crop centres and
	// Final the refined points.
	Initial, Clamped, Final [][3]int
	// CoarseCentres are the coarse crops' centres; CoarsePosition their mean position vector.
	CoarseCentres  [][3]int
	CoarsePosition [3]float64
}

// Locate runs the two query steps on a prepared query grid: the coarse relative-distance
// step (cfg.CoarseCrops random crops near the centre, seeded by cfg.Seed, through the
// encoder in one batched call) and the multi-scale similarity refinement (one crop per
// template point through the full network, batched, then the similarity search). It returns
// the points of every stage; Boxes turns them into boxes on the query file's grid.
func Locate(ctx context.Context, net *Network, ts *TemplateSet, q *Grid,
	cfg Config) (*Points, error) {
	cfg = cfg.withDefaults()
	if err := net.check(); err != nil {
		return nil, err
	}
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	if ts.ModelSHA256 != net.ModelSHA256 {
		return nil, fmt.Errorf("%w: it records %s, the network is %s", ErrOtherModel,
			short(ts.ModelSHA256), short(net.ModelSHA256))
	}
	if err := ts.CheckResampling(q.Resampling()); err != nil {
		return nil, fmt.Errorf("query %s: %w", q.Source, err)
	}
	res := &Points{}
	if err := coarse(ctx, net, q, cfg, res); err != nil {
		return nil, err
	}
	initialPoints(ts, q, res)
	if err := refine(ctx, net, ts, q, cfg, res); err != nil {
		return nil, err
	}
	return res, nil
}

// paddedDims returns the padded extent (z, y, x) of a grid.
func paddedDims(g *Grid) [3]int {
	d := g.Dims()
	return [3]int{d[0] + 2*Pad, d[1] + 2*Pad, d[2] + 2*Pad}
}

// coarse draws the coarse crops and averages their position vectors and centres.
func coarse(ctx context.Context, net *Network, q *Grid, cfg Config, res *Points) error {
	S := paddedDims(q)
	rng := rand.New(rand.NewPCG(cfg.Seed, rngStreamSalt))
	for i := 0; i < cfg.CoarseCrops; i++ {
		var c [3]int
		found := false
		for try := 0; try < maxRedraws && !found; try++ {
			for a := 0; a < 3; a++ {
				c[a] = S[a]/2 - coarseJitter + rng.IntN(2*coarseJitter)
			}
			found = q.at([3]int{c[0] - Pad, c[1] - Pad, c[2] - Pad}) >= airThreshold
		}
		if !found {
			return fmt.Errorf("localize: query %s: no voxel above %v within %d voxels of "+
				"the centre after %d draws; is it normalised CT?", q.Source, airThreshold,
				coarseJitter, maxRedraws)
		}
		res.CoarseCentres = append(res.CoarseCentres, c)
	}
	model, names := net.Encoder, []string{OutputPosition}
	if model == nil {
		model = net.Full
	}
	start := time.Now()
	var sum [3]float64
	err := runBatched(ctx, model, len(res.CoarseCentres), cfg.BatchSize, names,
		func(p int, dst []float32) error {
			q.cropPadded(res.CoarseCentres[p], dst)
			return nil
		},
		func(first int, outs []backend.Tensor) error {
			if err := checkPosition(outs[0]); err != nil {
				return err
			}
			for i, v := range outs[0].Data {
				sum[i%3] += float64(v)
			}
			return nil
		})
	if err != nil {
		return err
	}
	for a := 0; a < 3; a++ {
		res.CoarsePosition[a] = sum[a] / float64(len(res.CoarseCentres))
	}
	cfg.Logger.Info("localize: coarse step done", "query", q.Source,
		"crops", len(res.CoarseCentres), "seconds", time.Since(start).Seconds())
	return nil
}

// initialPoints maps every template point's position vector to a voxel of the padded
// frame: DistanceRatio * tanh(template - query) + mean crop centre in mm, divided by 3 mm
// and rounded half to even (numpy's round).
func initialPoints(ts *TemplateSet, q *Grid, res *Points) {
	var cmm [3]float64
	for _, c := range res.CoarseCentres {
		for a := 0; a < 3; a++ {
			cmm[a] += float64(c[a]) * Spacing
		}
	}
	for a := 0; a < 3; a++ {
		cmm[a] /= float64(len(res.CoarseCentres))
	}
	n := ts.NumPoints()
	res.Initial = make([][3]int, n)
	for p := 0; p < n; p++ {
		for a := 0; a < 3; a++ {
			d := float64(ts.Positions[3*p+a]) - res.CoarsePosition[a]
			mm := DistanceRatio[a]*math.Tanh(d) + cmm[a]
			res.Initial[p][a] = int(math.RoundToEven(mm / Spacing))
		}
	}
}

// refine clamps each point to [32, S-33], crops the patch around it, runs the full network
// and moves the point by the similarity search's offset.
func refine(ctx context.Context, net *Network, ts *TemplateSet, q *Grid, cfg Config,
	res *Points) error {
	search, err := newSearch(cfg.Kernels, ts)
	if err != nil {
		return err
	}
	defer search.Close()
	S := paddedDims(q)
	n := len(res.Initial)
	res.Clamped = make([][3]int, n)
	res.Final = make([][3]int, n)
	for p, c := range res.Initial {
		for a := 0; a < 3; a++ {
			res.Clamped[p][a] = min(max(c[a], Pad), S[a]-Pad-1)
		}
	}
	start := time.Now()
	cfg.Logger.Info("localize: refinement", "query", q.Source, "points", n,
		"batch", cfg.BatchSize)
	err = runBatched(ctx, net.Full, n, cfg.BatchSize, OutputFeatures[:],
		func(p int, dst []float32) error {
			q.cropPadded(res.Clamped[p], dst)
			return nil
		},
		func(first int, outs []backend.Tensor) error {
			off, err := searchOffsets(search, ts, first, outs)
			if err != nil {
				return err
			}
			for i, o := range off {
				for a := 0; a < 3; a++ {
					res.Final[first+i][a] = res.Clamped[first+i][a] + o[a]
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	cfg.Logger.Info("localize: refinement done", "query", q.Source,
		"seconds", time.Since(start).Seconds())
	return nil
}
