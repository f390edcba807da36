package localize

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func hostSteps(net *Network, ts *TemplateSet, q *Grid, cfg Config) *HostSteps {
	return &HostSteps{Net: net, Set: ts, Query: q, Config: cfg}
}

// countingSteps counts Values calls and points.
type countingSteps struct {
	*HostSteps
	calls, points int
}

func (c *countingSteps) Values(p [][3]int) ([]float32, error) {
	c.calls++
	c.points += len(p)
	return c.HostSteps.Values(p)
}

// oneByOne is the coarse draw as a loop that reads one candidate at a time: the order of
// draws coarseCentres must reproduce.
func oneByOne(q *Grid, cfg Config) [][3]int {
	S := paddedDims(q)
	rng := rand.New(rand.NewPCG(cfg.Seed, rngStreamSalt))
	var out [][3]int
	for len(out) < cfg.CoarseCrops {
		for try := 0; try < maxRedraws; try++ {
			var c [3]int
			for a := 0; a < 3; a++ {
				c[a] = S[a]/2 - coarseJitter + rng.IntN(2*coarseJitter)
			}
			if at(q, c[0]-Pad, c[1]-Pad, c[2]-Pad) >= airThreshold {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// TestCoarseCentresMatchOneByOne: drawing candidates ahead in rounds accepts the same
// centres as drawing them one at a time, with air near the centre or without, and costs one
// Values call when there is no air.
func TestCoarseCentresMatchOneByOne(t *testing.T) {
	for _, air := range []float64{0, 0.5, 0.95} {
		r := rand.New(rand.NewPCG(uint64(100*air), 9))
		v := lasVolume(t, 41, 37, 45, func(z, y, x int) float32 {
			if r.Float64() < air {
				return 0
			}
			return 0.2 + 0.7*r.Float32()
		})
		q := prepare(t, v, "air", Image)
		for seed := uint64(1); seed <= 6; seed++ {
			cfg := Config{Seed: seed, CoarseCrops: 10}.withDefaults()
			steps := &countingSteps{HostSteps: hostSteps(nil, nil, q, cfg)}
			got, err := coarseCentres(steps, q, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if want := oneByOne(q, cfg); !reflect.DeepEqual(got, want) {
				t.Fatalf("air %v seed %d: centres %v, one by one %v", air, seed, got, want)
			}
			if air == 0 && (steps.calls != 1 || steps.points != cfg.CoarseCrops) {
				t.Errorf("no air: %d Values calls for %d points, want 1 for %d", steps.calls,
					steps.points, cfg.CoarseCrops)
			}
			if air > 0.9 && steps.calls < 2 {
				t.Errorf("air %v: %d Values call; expected redraws", air, steps.calls)
			}
		}
	}
}

// TestCoarseCentresAllAir: a grid of air near its centre is refused after maxRedraws draws
// in a row, naming the query.
func TestCoarseCentresAllAir(t *testing.T) {
	q := prepare(t, lasVolume(t, 30, 30, 30, func(z, y, x int) float32 { return 0 }),
		"empty.nii.gz", Image)
	cfg := Config{Seed: 1}.withDefaults()
	steps := &countingSteps{HostSteps: hostSteps(nil, nil, q, cfg)}
	_, err := coarseCentres(steps, q, cfg)
	if err == nil || !strings.Contains(err.Error(), "empty.nii.gz") ||
		!strings.Contains(err.Error(), "no voxel above") {
		t.Fatalf("error %v", err)
	}
	if steps.points < maxRedraws || steps.calls > 200 {
		t.Errorf("%d points in %d calls before giving up; want at least %d points in few calls",
			steps.points, steps.calls, maxRedraws)
	}
}

// TestPlanGridMatchesPrepare: the geometry PlanGrid computes without voxels is the geometry
// of the grid PrepareWith makes, for every resampling, kind and orientation tried.
func TestPlanGridMatchesPrepare(t *testing.T) {
	rpi, err := volumeRPI(23, 19, 17)
	if err != nil {
		t.Fatal(err)
	}
	odd := rpi.Clone()
	odd.Spacing = [3]float64{0.77, 0.9, 1.25}
	for r := range 3 {
		for a := range 3 {
			odd.Affine[r][a] *= odd.Spacing[a] / 1.5
		}
	}
	las3 := lasVolume(t, 20, 21, 22, func(z, y, x int) float32 { return float32(x + y + z) })
	labels := func(v *volume.Volume) *volume.Volume {
		l := v.Clone()
		for i := range l.Data {
			l.Data[i] = float32(i % 3)
		}
		return l
	}
	for name, v := range map[string]*volume.Volume{"rpi": rpi, "odd": odd, "las3": las3} {
		for _, res := range []Resampling{Linear, Reference} {
			for _, kind := range []Kind{Image, Labels} {
				in := v
				if kind == Labels {
					in = labels(v)
				}
				g, err := PrepareWith(Config{Resampling: res}, in, name, kind)
				if err != nil {
					t.Fatal(err)
				}
				plan, err := PlanGrid(&volume.Volume{Shape: v.Shape, Spacing: v.Spacing,
					Affine: v.Affine}, name, res, kind)
				if err != nil {
					t.Fatal(err)
				}
				p := plan.Grid
				if p.Vol.Data != nil || p.Vol.Shape != g.Vol.Shape ||
					p.Vol.Spacing != g.Vol.Spacing || p.Vol.Affine != g.Vol.Affine ||
					p.ratio != g.ratio || !reflect.DeepEqual(p.reo, g.reo) ||
					p.srcShape != g.srcShape || p.srcAffine != g.srcAffine ||
					p.Resampling() != g.Resampling() {
					t.Errorf("%s %s kind %d: plan %+v %+v, prepared %+v %+v", name, res, kind,
						p, p.Vol, g, g.Vol)
				}
				if plan.Resample != (name != "las3") || plan.Ratio != g.ratio {
					t.Errorf("%s: Resample %v, Ratio %v (grid %v)", name, plan.Resample,
						plan.Ratio, g.ratio)
				}
			}
		}
	}
}

// at reads grid voxel (z, y, x), 0 outside.
func at(q *Grid, z, y, x int) float32 {
	d := q.Dims()
	if z < 0 || z >= d[0] || y < 0 || y >= d[1] || x < 0 || x >= d[2] {
		return 0
	}
	return q.Vol.Data[x+d[2]*(y+d[1]*z)]
}

// TestPlanGridRefusesHugeGrids: a 3 mm grid over maxGridVoxels is refused from the geometry
// alone, before any voxel is allocated, naming the source.
func TestPlanGridRefusesHugeGrids(t *testing.T) {
	v := &volume.Volume{Shape: [3]int{4000, 4000, 100}, Spacing: [3]float64{2.9, 2.9, 9},
		Affine: volume.Affine{{-2.9, 0, 0, 0}, {0, 2.9, 0, 0}, {0, 0, 9, 0}, {0, 0, 0, 1}}}
	_, err := PlanGrid(v, "huge.nii.gz", Linear, Image)
	if err == nil || !strings.Contains(err.Error(), "huge.nii.gz") ||
		!strings.Contains(err.Error(), "more than") {
		t.Fatalf("error %v", err)
	}
}
