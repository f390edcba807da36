package localize

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
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
	return LocateWith(ctx, &HostSteps{Net: net, Set: ts, Query: q, Config: cfg}, ts, q, cfg)
}

// LocateWith is Locate with the voxel work done by steps: the arithmetic between the steps
// (crop draws, initial points, clamping) is this function's whichever Steps run. q gives
// the grid's geometry; its voxels are read only through steps (engine/gpu passes a
// GridPlan's Grid, whose voxels are on the device).
func LocateWith(ctx context.Context, steps Steps, ts *TemplateSet, q *Grid,
	cfg Config) (*Points, error) {
	cfg = cfg.withDefaults()
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	if m := steps.ModelSHA256(); ts.ModelSHA256 != m {
		return nil, fmt.Errorf("%w: it records %s, the network is %s", ErrOtherModel,
			short(ts.ModelSHA256), short(m))
	}
	if err := ts.CheckResampling(q.Resampling()); err != nil {
		return nil, fmt.Errorf("query %s: %w", q.Source, err)
	}
	res := &Points{}
	if err := coarse(ctx, steps, q, cfg, res); err != nil {
		return nil, err
	}
	initialPoints(ts, q, res)
	if err := refine(ctx, steps, q, cfg, res); err != nil {
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
func coarse(ctx context.Context, steps Steps, q *Grid, cfg Config, res *Points) error {
	centres, err := coarseCentres(steps, q, cfg)
	if err != nil {
		return err
	}
	res.CoarseCentres = centres
	start := time.Now()
	pos, err := steps.Positions(ctx, centres)
	if err != nil {
		return err
	}
	if len(pos) != len(centres) {
		return fmt.Errorf("localize: %d positions for %d coarse crops", len(pos), len(centres))
	}
	var sum [3]float64
	for _, p := range pos {
		for a := range 3 {
			sum[a] += float64(p[a])
		}
	}
	for a := 0; a < 3; a++ {
		res.CoarsePosition[a] = sum[a] / float64(len(centres))
	}
	cfg.Logger.Info("localize: coarse step done", "query", q.Source,
		"crops", len(centres), "seconds", time.Since(start).Seconds())
	return nil
}

// coarseCentres draws the coarse crops' centres: each is uniform in [S/2 - 10, S/2 + 10) per
// axis of the padded extent S, redrawn while the grid there is air (below airThreshold), at
// most maxRedraws times in a row. Candidates are drawn ahead, in the order a one-by-one
// loop would draw them, and their voxels read in one Values call per round, so a grid on a
// device costs one round trip for the common case of no air near the centre.
func coarseCentres(steps Steps, q *Grid, cfg Config) ([][3]int, error) {
	S := paddedDims(q)
	rng := rand.New(rand.NewPCG(cfg.Seed, rngStreamSalt))
	centres := make([][3]int, 0, cfg.CoarseCrops)
	misses := 0 // draws since the last accepted centre
	for len(centres) < cfg.CoarseCrops {
		// As many candidates as crops are missing, more after misses (air near the centre
		// tends to stay); accepted ones are never more than the missing crops.
		cand := make([][3]int, min(cfg.CoarseCrops-len(centres)+misses, maxRedraws))
		for i := range cand {
			for a := 0; a < 3; a++ {
				cand[i][a] = S[a]/2 - coarseJitter + rng.IntN(2*coarseJitter)
			}
		}
		vals, err := steps.Values(cand)
		if err != nil {
			return nil, err
		}
		if len(vals) != len(cand) {
			return nil, fmt.Errorf("localize: %d values for %d points", len(vals), len(cand))
		}
		for i, v := range vals {
			if v >= airThreshold {
				centres = append(centres, cand[i])
				misses = 0
				if len(centres) == cfg.CoarseCrops {
					break
				}
				continue
			}
			if misses++; misses == maxRedraws {
				return nil, fmt.Errorf("localize: query %s: no voxel above %v within %d "+
					"voxels of the centre after %d draws; is it normalised CT?", q.Source,
					airThreshold, coarseJitter, maxRedraws)
			}
		}
	}
	return centres, nil
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

// refine clamps each point to [32, S-33] and moves it by the offset the steps find with the
// full network and the similarity search on the crop around it.
func refine(ctx context.Context, steps Steps, q *Grid, cfg Config, res *Points) error {
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
	off, err := steps.Offsets(ctx, res.Clamped)
	if err != nil {
		return err
	}
	if len(off) != n {
		return fmt.Errorf("localize: %d offsets for %d points", len(off), n)
	}
	for p, o := range off {
		for a := 0; a < 3; a++ {
			res.Final[p][a] = res.Clamped[p][a] + o[a]
		}
	}
	cfg.Logger.Info("localize: refinement done", "query", q.Source,
		"seconds", time.Since(start).Seconds())
	return nil
}
