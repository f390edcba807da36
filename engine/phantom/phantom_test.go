package phantom

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func smallConfig(code string, seed int64) Config {
	return Config{Shape: [3]int{61, 53, 37}, Spacing: [3]float64{6, 6.5, 9},
		Orientation: code, Seed: seed, Noise: 15, Lungs: true}
}

func mustGenerate(t testing.TB, cfg Config) *Phantom {
	t.Helper()
	p, err := Generate(cfg)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", cfg, err)
	}
	return p
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for n := range a {
		if math.Float32bits(a[n]) != math.Float32bits(b[n]) {
			return false
		}
	}
	return true
}

func TestGenerateDeterministic(t *testing.T) {
	a := mustGenerate(t, smallConfig("LPS", 3))
	b := mustGenerate(t, smallConfig("LPS", 3))
	if !sameBits(a.Image.Data, b.Image.Data) || !sameBits(a.Labels.Data, b.Labels.Data) {
		t.Fatal("same config gave different voxels")
	}
	if a.Image.Affine != b.Image.Affine {
		t.Fatal("same config gave different affines")
	}
	c := mustGenerate(t, smallConfig("LPS", 4))
	if sameBits(a.Image.Data, c.Image.Data) || sameBits(a.Labels.Data, c.Labels.Data) {
		t.Fatal("seeds 3 and 4 gave the same phantom")
	}
	// A grid big enough to be painted in parallel must also be reproducible.
	big := Config{Shape: [3]int{96, 96, 48}, Spacing: [3]float64{4, 4, 5}, Seed: 9, Noise: 10}
	d := mustGenerate(t, big)
	prev := runtime.GOMAXPROCS(1)
	e := mustGenerate(t, big)
	runtime.GOMAXPROCS(prev)
	if !sameBits(d.Image.Data, e.Image.Data) || !sameBits(d.Labels.Data, e.Labels.Data) {
		t.Fatal("parallel and sequential generation differ")
	}
}

func TestGenerateOrientationAndGeometry(t *testing.T) {
	for _, code := range []string{"RAS", "LPS", "LAS", "SPL", "IRA"} {
		p := mustGenerate(t, smallConfig(code, 1))
		if got := volume.OrientationOf(p.Image.Affine); got != code {
			t.Errorf("%s: image affine has orientation %q", code, got)
		}
		if p.Labels.Affine != p.Image.Affine || p.Labels.Shape != p.Image.Shape {
			t.Errorf("%s: labels and image grids differ", code)
		}
		// The world centre of the grid is the origin whatever the code.
		var centre [3]float64
		for a := 0; a < 3; a++ {
			centre[a] = float64(p.Image.Shape[a]-1) / 2
		}
		w := p.Image.Affine.Apply(centre)
		for a := 0; a < 3; a++ {
			if math.Abs(w[a]) > 1e-9 {
				t.Errorf("%s: grid centre at %v, want the origin", code, w)
			}
		}
	}
}

// TestOrientationVariantsSameAnatomy reorients phantoms generated under several codes to
// RAS and compares them with the RAS phantom voxel for voxel.
func TestOrientationVariantsSameAnatomy(t *testing.T) {
	ref := mustGenerate(t, smallConfig("RAS", 7))
	for _, code := range []string{"LPS", "LAS", "SAR", "PIL"} {
		p := mustGenerate(t, smallConfig(code, 7))
		img, r, err := p.Image.Reorient("RAS")
		if err != nil {
			t.Fatal(err)
		}
		lab, err := r.Apply(p.Labels)
		if err != nil {
			t.Fatal(err)
		}
		if img.Shape != ref.Image.Shape || !sameBits(img.Data, ref.Image.Data) ||
			!sameBits(lab.Data, ref.Labels.Data) {
			t.Errorf("%s reoriented to RAS differs from the RAS phantom", code)
		}
		for a := 0; a < 3; a++ {
			for c := 0; c < 4; c++ {
				if math.Abs(img.Affine[a][c]-ref.Image.Affine[a][c]) > 1e-9 {
					t.Errorf("%s: affine after reorienting %v, want %v", code, img.Affine,
						ref.Image.Affine)
				}
			}
		}
		for n := range ref.Organs {
			if p.Organs[n] != ref.Organs[n] {
				t.Errorf("%s: organ %s differs", code, p.Organs[n].Name)
			}
		}
	}
}

func TestLabelsInsideBodyAndOrgansDisjoint(t *testing.T) {
	for seed := int64(0); seed < 6; seed++ {
		p := mustGenerate(t, smallConfig("LPS", seed))
		v := p.Labels
		seen := map[int]int{}
		for k := 0; k < v.Shape[2]; k++ {
			for j := 0; j < v.Shape[1]; j++ {
				for i := 0; i < v.Shape[0]; i++ {
					w := v.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
					inside := 0
					for n := range p.Organs {
						if p.Organs[n].Contains(w) {
							inside++
						}
					}
					l := int(v.At(i, j, k))
					if inside > 1 {
						t.Fatalf("seed %d: %d organs overlap at %v", seed, inside, w)
					}
					if l == 0 {
						if inside == 1 && p.Body.Contains(w) {
							t.Fatalf("seed %d: organ voxel %v unlabelled", seed, w)
						}
						continue
					}
					seen[l]++
					if !p.Body.Contains(w) {
						t.Fatalf("seed %d: label %d at %v outside the body", seed, l, w)
					}
					if p.Image.At(i, j, k) < -950 && l != 11 && l != 14 {
						t.Fatalf("seed %d: label %d on air-valued voxel", seed, l)
					}
				}
			}
		}
		for _, o := range p.Organs {
			if seen[o.Label] == 0 {
				t.Errorf("seed %d: organ %s has no voxel", seed, o.Name)
			}
		}
		if len(seen) != len(p.Organs) {
			t.Errorf("seed %d: labels %v present, organs %d", seed, seen, len(p.Organs))
		}
	}
}

// chordBox computes an organ's voxel box in closed form, without sampling: for every grid
// line along each axis it intersects the line with the ellipsoid (a quadratic in the line
// parameter) and keeps the voxel centres inside the chord. It works on the RAS grid the
// anatomy is defined on and maps the result to the phantom's grid. Voxel centres within tol
// of the surface are reported in slack, where either answer is right.
func chordBox(p *Phantom, o Organ) (lo, hi, slack [3]int, ok bool) {
	const tol = 1e-6
	shape, sp := p.Config.Shape, p.Config.Spacing
	var origin [3]float64
	for a := 0; a < 3; a++ {
		origin[a] = -sp[a] * float64(shape[a]-1) / 2
	}
	// M = Axes · diag(1/r²) · Axesᵀ.
	var m [3][3]float64
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			for n := 0; n < 3; n++ {
				m[r][c] += o.Axes[r][n] * o.Axes[c][n] / (o.Radii[n] * o.Radii[n])
			}
		}
	}
	rlo := [3]int{math.MaxInt, math.MaxInt, math.MaxInt}
	rhi := [3]int{-1, -1, -1}
	for a := 0; a < 3; a++ {
		b, c := (a+1)%3, (a+2)%3
		for ib := 0; ib < shape[b]; ib++ {
			for ic := 0; ic < shape[c]; ic++ {
				var d [3]float64 // line point (a coordinate at the centre) minus Center
				d[a] = -o.Center[a]
				d[b] = origin[b] + sp[b]*float64(ib) - o.Center[b]
				d[c] = origin[c] + sp[c]*float64(ic) - o.Center[c]
				qa := m[a][a]
				qb := 2 * (m[a][0]*d[0] + m[a][1]*d[1] + m[a][2]*d[2])
				qc := -1.0
				for r := 0; r < 3; r++ {
					for s := 0; s < 3; s++ {
						qc += d[r] * m[r][s] * d[s]
					}
				}
				disc := qb*qb - 4*qa*qc
				if disc < 0 {
					continue
				}
				t1 := (-qb - math.Sqrt(disc)) / (2 * qa)
				t2 := (-qb + math.Sqrt(disc)) / (2 * qa)
				f1 := (t1 - origin[a]) / sp[a]
				f2 := (t2 - origin[a]) / sp[a]
				i1 := max(int(math.Ceil(f1-tol)), 0)
				i2 := min(int(math.Floor(f2+tol)), shape[a]-1)
				if i1 > i2 {
					continue
				}
				edge := math.Abs(f1-math.Round(f1)) < tol || math.Abs(f2-math.Round(f2)) < tol
				if edge {
					slack[a], slack[b], slack[c] = 1, 1, 1
				}
				rlo[a], rhi[a] = min(rlo[a], i1), max(rhi[a], i2)
				rlo[b], rhi[b] = min(rlo[b], ib), max(rhi[b], ib)
				rlo[c], rhi[c] = min(rlo[c], ic), max(rhi[c], ic)
			}
		}
	}
	if rhi[0] < 0 {
		return lo, hi, slack, false
	}
	lo, hi = p.toGrid.BoxFromSource(rlo, rhi)
	var s [3]int
	for n := 0; n < 3; n++ {
		s[n] = slack[p.toGrid.Perm[n]]
	}
	return lo, hi, s, true
}

// TestBoxesMatchAnalyticExtent checks each organ's voxel box two ways: exactly against the
// closed-form chord box, and against the continuous bounds of its ellipsoid, which it must
// never exceed. How far inside those bounds the box may fall depends on where the grid
// lines pass the tangent points, so that side is bounded by the chord box, not by a
// fixed voxel count.
func TestBoxesMatchAnalyticExtent(t *testing.T) {
	for _, code := range []string{"RAS", "LPS", "SAR"} {
		for seed := int64(0); seed < 4; seed++ {
			p := mustGenerate(t, smallConfig(code, seed))
			for _, o := range p.Organs {
				lo, hi, err := p.Box(o.Label)
				if err != nil {
					t.Fatalf("%s seed %d: %v", code, seed, err)
				}
				clo, chi, slack, ok := chordBox(p, o)
				if !ok {
					t.Fatalf("%s seed %d %s: no voxel centre inside", code, seed, o.Name)
				}
				wlo, whi := o.Extent()
				a, b := p.WorldToVoxel(wlo), p.WorldToVoxel(whi)
				for ax := 0; ax < 3; ax++ {
					if abs(lo[ax]-clo[ax]) > slack[ax] || abs(hi[ax]-chi[ax]) > slack[ax] {
						t.Errorf("%s seed %d %s axis %d: box [%d, %d], chord box [%d, %d]",
							code, seed, o.Name, ax, lo[ax], hi[ax], clo[ax], chi[ax])
					}
					flo, fhi := math.Min(a[ax], b[ax]), math.Max(a[ax], b[ax])
					if float64(lo[ax]) < flo-1e-6 || float64(hi[ax]) > fhi+1e-6 {
						t.Errorf("%s seed %d %s axis %d: box [%d, %d] outside ellipsoid "+
							"[%.3f, %.3f]", code, seed, o.Name, ax, lo[ax], hi[ax], flo, fhi)
					}
				}
			}
		}
	}
}

// TestBoxWithinAVoxelOnFineGrid checks the wording on a 2.5 mm grid: every face of
// every box lies within a voxel of the ellipsoid's continuous bounds, plus at most a quarter
// voxel lost because no grid line passes exactly through the tangent point (the thin,
// elongated pancreas loses about 0.05 voxel that way at this spacing; the exact check is
// TestBoxesMatchAnalyticExtent).
func TestBoxWithinAVoxelOnFineGrid(t *testing.T) {
	cfg := Config{Shape: [3]int{160, 128, 120}, Spacing: [3]float64{2.5, 2.5, 2.5},
		Orientation: "LPS", Seed: 11, Lungs: true}
	p := mustGenerate(t, cfg)
	for _, o := range p.Organs {
		lo, hi, err := p.Box(o.Label)
		if err != nil {
			t.Fatal(err)
		}
		wlo, whi := o.Extent()
		a, b := p.WorldToVoxel(wlo), p.WorldToVoxel(whi)
		for ax := 0; ax < 3; ax++ {
			top := float64(p.Labels.Shape[ax] - 1)
			flo := math.Max(math.Min(a[ax], b[ax]), 0)
			fhi := math.Min(math.Max(a[ax], b[ax]), top)
			if float64(lo[ax])-flo > 1.25 || fhi-float64(hi[ax]) > 1.25 {
				t.Errorf("%s axis %d: box [%d, %d], ellipsoid [%.3f, %.3f]", o.Name, ax,
					lo[ax], hi[ax], flo, fhi)
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestExtremePointsOnPhantom(t *testing.T) {
	p := mustGenerate(t, smallConfig(volume.Canonical, 2))
	for _, o := range p.Organs {
		pts, err := p.ExtremePoints(o.Label)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi, err := p.Box(o.Label)
		if err != nil {
			t.Fatal(err)
		}
		for row, pt := range pts {
			// Row r fixes array axis r%3 (z, y, x) at the box's min (r < 3) or max face.
			ax := 2 - row%3 // voxel axis of that array axis
			face := lo[ax]
			if row >= 3 {
				face = hi[ax]
			}
			if pt[row%3] != face {
				t.Errorf("%s row %d: point %v not on face %d", o.Name, row, pt, face)
			}
			if got := p.Labels.At(pt[2], pt[1], pt[0]); got != float32(o.Label) {
				t.Errorf("%s row %d: point %v holds label %v", o.Name, row, pt, got)
			}
		}
	}
	if _, err := p.ExtremePoints(99); !errors.Is(err, volume.ErrLabelAbsent) {
		t.Errorf("absent label: error %v", err)
	}
}

func TestHounsfieldUnits(t *testing.T) {
	cfg := smallConfig("RAS", 5)
	cfg.Noise = 0
	p := mustGenerate(t, cfg)
	counts := map[float32]int{}
	for n, hu := range p.Image.Data {
		counts[hu]++
		if l := int(p.Labels.Data[n]); l != 0 {
			o, ok := p.Organ(l)
			if !ok || hu != o.HU {
				t.Fatalf("voxel %d: label %d with HU %v", n, l, hu)
			}
		}
	}
	for _, hu := range []float32{HUAir, HUFat, HUSoftTissue, HUBoneCore, HUBoneCortex, HULung} {
		if counts[hu] == 0 {
			t.Errorf("no voxel at %v HU", hu)
		}
	}
	// Noise has the configured standard deviation: check it on air outside the body.
	cfg.Noise = 20
	noisy := mustGenerate(t, cfg)
	var s, s2 float64
	var n int
	for i, hu := range noisy.Image.Data {
		if p.Image.Data[i] == HUAir {
			d := float64(hu - HUAir)
			s, s2, n = s+d, s2+d*d, n+1
		}
	}
	mean := s / float64(n)
	std := math.Sqrt(s2/float64(n) - mean*mean)
	if math.Abs(mean) > 1 || math.Abs(std-20) > 1 {
		t.Errorf("noise mean %.2f std %.2f over %d voxels, want 0 and 20", mean, std, n)
	}
}

func TestGenerateBadConfig(t *testing.T) {
	good := smallConfig("RAS", 1)
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"zero size", func(c *Config) { c.Shape[1] = 0 }, "Shape"},
		{"negative size", func(c *Config) { c.Shape[2] = -4 }, "Shape"},
		{"over cap", func(c *Config) { c.MaxVoxels = 1000 }, "MaxVoxels"},
		{"huge", func(c *Config) { c.Shape = [3]int{1 << 20, 1 << 20, 1 << 20} }, "Shape"},
		{"zero spacing", func(c *Config) { c.Spacing[0] = 0 }, "Spacing[0]"},
		{"nan spacing", func(c *Config) { c.Spacing[2] = math.NaN() }, "Spacing[2]"},
		{"inf spacing", func(c *Config) { c.Spacing[1] = math.Inf(1) }, "Spacing[1]"},
		{"negative noise", func(c *Config) { c.Noise = -1 }, "Noise"},
		{"nan noise", func(c *Config) { c.Noise = math.NaN() }, "Noise"},
		{"bad code", func(c *Config) { c.Orientation = "RAR" }, "Orientation"},
	}
	for _, tc := range tests {
		cfg := good
		tc.edit(&cfg)
		_, err := Generate(cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want ErrConfig naming %s", tc.name, err, tc.field)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Shape: [3]int{128, 128, 96}, Spacing: [3]float64{3, 3, 3.5},
		Orientation: "LPS", Seed: 1, Noise: 20, Lungs: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLabelNamesMatchSharedData checks the organ names against the label table of the
// shared abdomen CT, so that tests mixing phantoms and real data mean the same organs.
func TestLabelNamesMatchSharedData(t *testing.T) {
	const path = "../../../shared/data/ct/abdomen_ct_labels.json"
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("skipping: %s not found (the shared data sits beside the repository)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	var names map[string]string
	if err := json.Unmarshal(raw, &names); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p := mustGenerate(t, smallConfig("RAS", 0))
	if len(p.Organs) != len(anatomy) {
		t.Fatalf("Lungs: true gave %d organs, want %d", len(p.Organs), len(anatomy))
	}
	for _, o := range p.Organs {
		if got := names[strconv.Itoa(o.Label)]; got != o.Name {
			t.Errorf("label %d is %q in %s, %q in the phantom", o.Label, got, path, o.Name)
		}
	}
}
