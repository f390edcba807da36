package kernels

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// refSimilarity is the reference formulation of one point's search, written as the
// reference code runs it, in float64: F.normalize over channels, a grouped Conv3d with
// padding k/2 (no bias) divided by k^3, F.interpolate trilinear to patch^3 with
// align_corners false, the sum over scales, and the first maximum in C order. It returns
// the fused map, the index of the maximum and each scale's (S+1)^3 correlation map.
func refSimilarity(scales []SimilarityScale, patch int, feats, kerns [][]float32) (
	fused []float64, best int, corr [][]float64) {
	fused = make([]float64, patch*patch*patch)
	for si, sc := range scales {
		S, k, C := sc.Size, sc.Kernel, sc.Channels
		s3, k3 := S*S*S, k*k*k
		norm := make([]float64, C*s3)
		for v := range s3 {
			var ss float64
			for c := range C {
				ss += float64(feats[si][c*s3+v]) * float64(feats[si][c*s3+v])
			}
			d := math.Max(math.Sqrt(ss), l2Eps)
			for c := range C {
				norm[c*s3+v] = float64(feats[si][c*s3+v]) / d
			}
		}
		// out[o] = sum over channels and taps t of K[t] * F[o+t-pad], zero outside F; the
		// loops run tap by tap over the range of o that stays inside F.
		n, pad := S+1, k/2
		out := make([]float64, n*n*n)
		for c := range C {
			for t := range k3 {
				w := float64(kerns[si][c*k3+t])
				dz, dy, dx := t/(k*k)-pad, t/k%k-pad, t%k-pad
				for oz := max(0, -dz); oz < min(n, S-dz); oz++ {
					for oy := max(0, -dy); oy < min(n, S-dy); oy++ {
						o := out[(oz*n+oy)*n : (oz*n+oy+1)*n]
						f := norm[c*s3+((oz+dz)*S+oy+dy)*S : c*s3+((oz+dz)*S+oy+dy+1)*S]
						for ox := max(0, -dx); ox < min(n, S-dx); ox++ {
							o[ox] += w * f[ox+dx]
						}
					}
				}
			}
		}
		for i := range out {
			out[i] /= float64(k3)
		}
		corr = append(corr, out)
		src := func(o int) (int, int, float64) {
			s := math.Max(float64(n)/float64(patch)*(float64(o)+0.5)-0.5, 0)
			i0 := int(s)
			return i0, min(i0+1, n-1), s - float64(i0)
		}
		for z := range patch {
			z0, z1, lz := src(z)
			for y := range patch {
				y0, y1, ly := src(y)
				for x := range patch {
					x0, x1, lx := src(x)
					at := func(a, b, c int) float64 { return out[(a*n+b)*n+c] }
					v := (1-lz)*((1-ly)*((1-lx)*at(z0, y0, x0)+lx*at(z0, y0, x1))+
						ly*((1-lx)*at(z0, y1, x0)+lx*at(z0, y1, x1))) +
						lz*((1-ly)*((1-lx)*at(z1, y0, x0)+lx*at(z1, y0, x1))+
							ly*((1-lx)*at(z1, y1, x0)+lx*at(z1, y1, x1)))
					fused[(z*patch+y)*patch+x] += v
				}
			}
		}
	}
	best = 0
	for i, v := range fused {
		if v > fused[best] {
			best = i
		}
	}
	return fused, best, corr
}

// randomInputs returns raw (unnormalised, never all-zero) features and template kernels
// for points points: kernels are sums of two templates' normalised centre crops.
func randomInputs(rng *rand.Rand, scales []SimilarityScale, points int) (feats, kerns [][]float32) {
	for _, sc := range scales {
		s3, k3 := sc.Size*sc.Size*sc.Size, sc.Kernel*sc.Kernel*sc.Kernel
		f := randSlice(rng, points*sc.Channels*s3)
		for i := range f {
			f[i] *= 3 // not unit norm, so Search must normalise
		}
		kern := make([]float32, points*sc.Channels*k3)
		tmpl := make([]float32, sc.Channels*s3)
		for p := range points {
			for range 2 {
				for i := range tmpl {
					tmpl[i] = 2*rng.Float32() - 1
				}
				dst := kern[p*sc.Channels*k3 : (p+1)*sc.Channels*k3]
				if err := AddTemplateKernel(dst, tmpl, sc.Channels, sc.Size, sc.Kernel); err != nil {
					panic(err)
				}
			}
		}
		feats, kerns = append(feats, f), append(kerns, kern)
	}
	return feats, kerns
}

// pointSlices returns point p's slices of batched per-scale inputs.
func pointSlices(scales []SimilarityScale, feats, kerns [][]float32, p int) (f, k [][]float32) {
	for si, sc := range scales {
		fv := sc.Channels * sc.Size * sc.Size * sc.Size
		kv := sc.Channels * sc.Kernel * sc.Kernel * sc.Kernel
		f = append(f, feats[si][p*fv:(p+1)*fv])
		k = append(k, kerns[si][p*kv:(p+1)*kv])
	}
	return f, k
}

func TestSimilarityMatchesReference(t *testing.T) {
	// Scores are sums of at most len(scales) mean cosines; float32 products over at most
	// k^3*C terms stay well inside this.
	const tol = 2e-5
	tests := []struct {
		name   string
		scales []SimilarityScale
		patch  int
		points int
	}{
		{"odd channels per scale", []SimilarityScale{{16, 2, 3}, {16, 4, 5}, {32, 8, 7}}, 32, 3},
		{"more points than a chunk", []SimilarityScale{{16, 2, 5}, {32, 4, 3}}, 24, 9},
		{"single scale, kernel 6", []SimilarityScale{{32, 6, 1}}, 40, 2},
		{"MedLAM scales", MedLAMScales(3), MedLAMPatch, 1},
	}
	for _, tc := range tests {
		for _, impl := range gemmAvailable() {
			t.Run(tc.name+"/"+impl.String(), func(t *testing.T) {
				if testing.Short() && tc.name == "MedLAM scales" {
					t.Skip("skip: the float64 reference takes seconds at full scale")
				}
				old := gemmUse
				gemmUse = impl
				defer func() { gemmUse = old }()
				rng := rand.New(rand.NewPCG(uint64(len(tc.name)), uint64(tc.points)))
				feats, kerns := randomInputs(rng, tc.scales, tc.points)
				s, err := NewSimilaritySearch(tc.scales, tc.patch)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]SimilarityMatch, tc.points)
				if err := s.Search(feats, kerns, got); err != nil {
					t.Fatal(err)
				}
				P := tc.patch
				lastChunk := (tc.points - 1) / similarityChunk * similarityChunk
				for p := range tc.points {
					f, k := pointSlices(tc.scales, feats, kerns, p)
					fused, best, corr := refSimilarity(tc.scales, P, f, k)
					g := got[p]
					at := (g.Index[0]*P+g.Index[1])*P + g.Index[2]
					if math.Abs(fused[at]-fused[best]) > tol {
						t.Errorf("point %d: index %v scores %g in the reference, its max is %g"+
							" at %d", p, g.Index, fused[at], fused[best], best)
					}
					if math.Abs(float64(g.Score)-fused[at]) > tol {
						t.Errorf("point %d: score %g, reference %g", p, g.Score, fused[at])
					}
					if second := secondBest(fused, best); fused[best]-second > 10*tol && at != best {
						t.Errorf("point %d: index %d, reference %d (margin %g)", p, at, best,
							fused[best]-second)
					}
					for a := range 3 {
						if g.Offset[a] != g.Index[a]-P/2+1 {
							t.Errorf("point %d: offset %v for index %v", p, g.Offset, g.Index)
						}
					}
					if p >= lastChunk {
						compareCorrelation(t, s, p-lastChunk, corr, tol)
					}
				}
			})
		}
	}
}

// secondBest returns the largest value of m other than at index best.
func secondBest(m []float64, best int) float64 {
	second := math.Inf(-1)
	for i, v := range m {
		if i != best && v > second {
			second = v
		}
	}
	return second
}

// compareCorrelation checks every value of each scale's correlation map of chunk point p
// (left in the workspace by the last Search) against the reference's.
func compareCorrelation(t *testing.T, s *SimilaritySearch, p int, corr [][]float64, tol float64) {
	t.Helper()
	for si := range s.scales {
		g := &s.scales[si]
		n, W := g.Size+1, g.full
		m := g.maps[p*W*W*W : (p+1)*W*W*W]
		k3 := float64(g.Kernel * g.Kernel * g.Kernel)
		worst := 0.0
		for z := range n {
			for y := range n {
				for x := range n {
					v := float64(m[((z+g.skip)*W+y+g.skip)*W+x+g.skip]) / k3
					worst = math.Max(worst, math.Abs(v-corr[si][(z*n+y)*n+x]))
				}
			}
		}
		if worst > tol {
			t.Errorf("scale %d: correlation differs from the reference by up to %g", si, worst)
		}
	}
}

// cubeInputs builds the known-answer case: query features that are one unit vector e1
// (times a random positive length) everywhere except a cube of the kernel's size, at
// patch voxels [at, at+8) per axis, holding e2; and kernels from a template whose centre
// crop is all e2. Each scale's correlation is then a separable tent peaking where the cube
// sits, so the fused argmax follows from the resize alone.
func cubeInputs(rng *rand.Rand, scales []SimilarityScale, at [3]int) (feats, kerns [][]float32) {
	for _, sc := range scales {
		S, k, C := sc.Size, sc.Kernel, sc.Channels
		s3 := S * S * S
		f := make([]float32, C*s3)
		tmpl := make([]float32, C*s3)
		ratio := MedLAMPatch / S
		for v := range s3 {
			z, y, x := v/(S*S), v/S%S, v%S
			in := true
			for a, c := range [3]int{z, y, x} {
				in = in && c >= at[a]/ratio && c < at[a]/ratio+k
			}
			ch := 0
			if in {
				ch = 1
			}
			f[ch*s3+v] = 0.5 + rng.Float32()
			tmpl[1*s3+v] = 0.5 + rng.Float32()
		}
		kern := make([]float32, C*k*k*k)
		if err := AddTemplateKernel(kern, tmpl, C, S, k); err != nil {
			panic(err)
		}
		feats, kerns = append(feats, f), append(kerns, kern)
	}
	return feats, kerns
}

func TestSimilarityKnownAnswer(t *testing.T) {
	scales := MedLAMScales(3)
	tests := []struct {
		name string
		at   [3]int // cube corner in patch voxels, a multiple of 8 so every scale holds it
	}{
		{"displaced +12, -12, +4", [3]int{40, 16, 32}},
		{"displaced -4, +12, -12", [3]int{24, 40, 16}},
		{"displaced +4, -4, +4", [3]int{32, 24, 32}},
	}
	s, err := NewSimilaritySearch(scales, MedLAMPatch)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			feats, kerns := cubeInputs(rand.New(rand.NewPCG(1, 2)), scales, tc.at)
			got := make([]SimilarityMatch, 1)
			if err := s.Search(feats, kerns, got); err != nil {
				t.Fatal(err)
			}
			var wantScore float64
			// tent[s] is scale s's resized score at the expected index: per axis 1-|src-q|/k.
			tent := make([]float64, len(scales))
			for i := range tent {
				tent[i] = 1
			}
			for a := range 3 {
				// The template kernel sits at patch voxels [28, 36): the cube is displaced
				// by d = at-28 voxels. Every scale's tent peaks at map index q = at/r + k/2
				// (r = 64/S); the resized tent is largest where src(o) = (S+1)/64*(o+0.5)-0.5
				// is nearest q, the same o at every scale for these cubes.
				d := tc.at[a] - 28
				want := -1
				for _, sc := range scales {
					o := nearestSource(sc.Size+1, MedLAMPatch, tc.at[a]*sc.Size/MedLAMPatch+sc.Kernel/2)
					if want >= 0 && o != want {
						t.Fatalf("axis %d: scales disagree (%d, %d); pick another cube", a, want, o)
					}
					want = o
				}
				for si, sc := range scales {
					src := math.Max(float64(sc.Size+1)/MedLAMPatch*(float64(want)+0.5)-0.5, 0)
					q := float64(tc.at[a]*sc.Size/MedLAMPatch + sc.Kernel/2)
					tent[si] *= 1 - math.Abs(src-q)/float64(sc.Kernel)
				}
				if got[0].Index[a] != want {
					t.Errorf("axis %d: index %d, want %d", a, got[0].Index[a], want)
				}
				// The reference reports idx-32+1: d for d > 0, d+1 for d < 0, since the
				// resize shifts the peak by (o+0.5)/64 - 0.5 voxel.
				wantOff := d
				if d < 0 {
					wantOff = d + 1
				}
				if got[0].Offset[a] != wantOff {
					t.Errorf("axis %d: offset %d for displacement %d, want %d", a,
						got[0].Offset[a], d, wantOff)
				}
			}
			if _, best, _ := refSimilarity(scales, MedLAMPatch, feats, kerns); best !=
				(got[0].Index[0]*MedLAMPatch+got[0].Index[1])*MedLAMPatch+got[0].Index[2] {
				t.Errorf("reference argmax %d, got index %v", best, got[0].Index)
			}
			wantScore = 0
			for _, v := range tent {
				wantScore += v
			}
			if math.Abs(float64(got[0].Score)-wantScore) > 1e-5 {
				t.Errorf("score %g, want %g (the resized tents at the index)",
					got[0].Score, wantScore)
			}
		})
	}
}

// nearestSource returns the output index o in [0, out) whose align_corners-false source
// coordinate in a grid of in samples is nearest q.
func nearestSource(in, out, q int) int {
	best, dist := 0, math.Inf(1)
	for o := range out {
		src := math.Max(float64(in)/float64(out)*(float64(o)+0.5)-0.5, 0)
		if d := math.Abs(src - float64(q)); d < dist {
			best, dist = o, d
		}
	}
	return best
}

func TestSimilarityDeterministic(t *testing.T) {
	scales := []SimilarityScale{{16, 2, 4}, {32, 4, 4}, {32, 8, 4}}
	const points = 10
	rng := rand.New(rand.NewPCG(3, 4))
	feats, kerns := randomInputs(rng, scales, points)
	run := func(procs int, from, to int) []SimilarityMatch {
		old := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(old)
		s, err := NewSimilaritySearch(scales, 32)
		if err != nil {
			t.Fatal(err)
		}
		var f, k [][]float32
		for si, sc := range scales {
			fv := sc.Channels * sc.Size * sc.Size * sc.Size
			kv := sc.Channels * sc.Kernel * sc.Kernel * sc.Kernel
			f = append(f, feats[si][from*fv:to*fv])
			k = append(k, kerns[si][from*kv:to*kv])
		}
		out := make([]SimilarityMatch, to-from)
		if err := s.Search(f, k, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := run(2, 0, points)
	tests := []struct {
		name            string
		procs, from, to int
	}{
		{"one worker", 1, 0, points},
		{"three workers", 3, 0, points},
		{"point 0 alone", 2, 0, 1},
		{"points 7-9", 2, 7, points},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(tc.procs, tc.from, tc.to)
			for i, g := range got {
				if g != all[tc.from+i] {
					t.Errorf("point %d: %+v, batch of all gave %+v", tc.from+i, g, all[tc.from+i])
				}
			}
		})
	}
}

func TestSimilarityErrors(t *testing.T) {
	good := MedLAMScales(2)
	tests := []struct {
		name   string
		scales []SimilarityScale
		patch  int
		points int
		edit   func(f, k [][]float32) ([][]float32, [][]float32)
		want   string
	}{
		{"no scales", nil, 64, 1, nil, "1 to 8 scales"},
		{"patch", good, 0, 1, nil, "patch 0"},
		{"size not multiple of 16", []SimilarityScale{{24, 2, 1}}, 64, 1, nil, "scale 0: size 24"},
		{"odd kernel", []SimilarityScale{{16, 3, 1}}, 64, 1, nil, "scale 0: kernel 3"},
		{"kernel above size", []SimilarityScale{{16, 18, 1}}, 64, 1, nil, "kernel 18"},
		{"channels", []SimilarityScale{{16, 2, 0}}, 64, 1, nil, "scale 0: channels 0"},
		{"zero points", good, 64, 0, nil, "zero points"},
		{"short features", good, 64, 1, func(f, k [][]float32) ([][]float32, [][]float32) {
			f[2] = f[2][:len(f[2])-1]
			return f, k
		}, "scale 2: features hold"},
		{"long kernels", good, 64, 1, func(f, k [][]float32) ([][]float32, [][]float32) {
			k[1] = append(k[1], 0)
			return f, k
		}, "scale 1: kernels hold"},
		{"missing scale", good, 64, 1, func(f, k [][]float32) ([][]float32, [][]float32) {
			return f[:2], k
		}, "got 2 feature"},
		{"NaN features", good, 64, 1, func(f, k [][]float32) ([][]float32, [][]float32) {
			for i := range f {
				for j := range f[i] {
					f[i][j] = float32(math.NaN())
				}
			}
			return f, k
		}, "no maximum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSimilaritySearch(tc.scales, tc.patch)
			if err == nil {
				f, k := randomInputs(rand.New(rand.NewPCG(5, 6)), tc.scales, max(tc.points, 1))
				if tc.edit != nil {
					f, k = tc.edit(f, k)
				}
				err = s.Search(f, k, make([]SimilarityMatch, tc.points))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) ||
				!strings.HasPrefix(err.Error(), "kernels: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestL2NormaliseChannels(t *testing.T) {
	tests := []struct {
		name                   string
		maps, channels, voxels int
	}{
		{"one channel", 1, 1, 7},
		{"odd sizes", 3, 5, 1031},
		{"full width", 2, 96, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.voxels), 1))
			x := randSlice(rng, tc.maps*tc.channels*tc.voxels)
			for c := range tc.channels { // one all-zero voxel must stay zero, not NaN
				x[c*tc.voxels] = 0
			}
			orig := append([]float32(nil), x...)
			if err := L2NormaliseChannels(x, tc.channels, tc.voxels); err != nil {
				t.Fatal(err)
			}
			for m := range tc.maps {
				for v := range tc.voxels {
					var ss float64
					for c := range tc.channels {
						o := float64(orig[(m*tc.channels+c)*tc.voxels+v])
						ss += o * o
					}
					d := math.Max(math.Sqrt(ss), l2Eps)
					for c := range tc.channels {
						i := (m*tc.channels+c)*tc.voxels + v
						if want := float64(orig[i]) / d; math.Abs(float64(x[i])-want) > 1e-6 {
							t.Fatalf("map %d voxel %d channel %d: %g, want %g", m, v, c, x[i], want)
						}
					}
				}
			}
		})
	}
	if err := L2NormaliseChannels(make([]float32, 10), 3, 3); err == nil {
		t.Error("a length that is not a whole number of maps was accepted")
	}
}

func TestAddTemplateKernel(t *testing.T) {
	tests := []struct {
		name                 string
		channels, size, kern int
	}{
		{"kernel 2 of 16", 3, 16, 2},
		{"kernel 8 of 64", 2, 64, 8},
		{"whole map", 5, 4, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.size), 9))
			f := randSlice(rng, tc.channels*tc.size*tc.size*tc.size)
			k3 := tc.kern * tc.kern * tc.kern
			dst := randSlice(rng, tc.channels*k3)
			prev := append([]float32(nil), dst...)
			if err := AddTemplateKernel(dst, f, tc.channels, tc.size, tc.kern); err != nil {
				t.Fatal(err)
			}
			lo, S, s3 := tc.size/2-tc.kern/2, tc.size, tc.size*tc.size*tc.size
			for tz := range tc.kern {
				for ty := range tc.kern {
					for tx := range tc.kern {
						v := ((lo+tz)*S+lo+ty)*S + lo + tx
						var ss float64
						for c := range tc.channels {
							ss += float64(f[c*s3+v]) * float64(f[c*s3+v])
						}
						for c := range tc.channels {
							i := c*k3 + (tz*tc.kern+ty)*tc.kern + tx
							want := float64(prev[i]) + float64(f[c*s3+v])/math.Sqrt(ss)
							if math.Abs(float64(dst[i])-want) > 1e-6 {
								t.Fatalf("tap %d,%d,%d channel %d: %g, want %g", tz, ty, tx, c,
									dst[i], want)
							}
						}
					}
				}
			}
		})
	}
	if err := AddTemplateKernel(make([]float32, 8), make([]float32, 64), 1, 4, 3); err == nil {
		t.Error("an odd kernel was accepted")
	}
}

// TestSimilarityMatchesTorch checks Search against torch's own conv3d and interpolate, on a
// case that build/bench/similarity_compare.py writes (MEDLSAM_SIMILARITY_TORCH_CASE names
// the folder): raw little-endian float32 inputs at the MedLAM scales, torch's fused maps and
// first maxima. Without the variable it skips: torch is not a test dependency.
func TestSimilarityMatchesTorch(t *testing.T) {
	dir := os.Getenv("MEDLSAM_SIMILARITY_TORCH_CASE")
	if dir == "" {
		t.Skip("skip: MEDLSAM_SIMILARITY_TORCH_CASE unset; build/bench/similarity_compare.py" +
			" sets it")
	}
	var c struct {
		Channels, Points int
		Index            [][3]int
		Score            []float64
	}
	raw, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []float32 {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	scales := MedLAMScales(c.Channels)
	var feats, kerns [][]float32
	for i := range scales {
		feats = append(feats, read(fmt.Sprintf("features%d.f32", i)))
		kerns = append(kerns, read(fmt.Sprintf("kernels%d.f32", i)))
	}
	fused := read("fused.f32")
	s, err := NewSimilaritySearch(scales, MedLAMPatch)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]SimilarityMatch, c.Points)
	if err := s.Search(feats, kerns, got); err != nil {
		t.Fatal(err)
	}
	const tol = 1e-4 // two float32 computations in different orders
	P := MedLAMPatch
	for p, g := range got {
		m := fused[p*P*P*P : (p+1)*P*P*P]
		at := (g.Index[0]*P+g.Index[1])*P + g.Index[2]
		if math.Abs(float64(m[at])-c.Score[p]) > tol || math.Abs(float64(g.Score)-c.Score[p]) > tol {
			t.Errorf("point %d: index %v scores %g in torch, Go says %g; torch max %g at %v",
				p, g.Index, m[at], g.Score, c.Score[p], c.Index[p])
		}
		t.Logf("point %d: go index %v score %.6f, torch index %v score %.6f", p, g.Index,
			g.Score, c.Index[p], c.Score[p])
	}
}

// TestSimilaritySteadyStateAllocations checks that a second Search of the same batch size
// allocates nothing proportional to the data: only the few small objects of starting the
// worker goroutines (ParallelFor): at most 4 KiB, where one feature map here is 384 KiB.
func TestSimilaritySteadyStateAllocations(t *testing.T) {
	tests := []struct {
		name   string
		points int
	}{
		{"one point", 1},
		{"two chunks", similarityChunk + 1},
	}
	scales := []SimilarityScale{{16, 2, 3}, {32, 4, 3}, {32, 8, 2}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			feats, kerns := randomInputs(rand.New(rand.NewPCG(8, 8)), scales, tc.points)
			s, err := NewSimilaritySearch(scales, 32)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]SimilarityMatch, tc.points)
			if err := s.Search(feats, kerns, out); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := s.Search(feats, kerns, out); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if b := after.TotalAlloc - before.TotalAlloc; b > 4096 {
				t.Errorf("second search allocated %d bytes in %d objects", b,
					after.Mallocs-before.Mallocs)
			} else {
				t.Logf("second search allocated %d bytes in %d objects", b,
					after.Mallocs-before.Mallocs)
			}
		})
	}
}

// TestTemplateHelpersOverflow checks that sizes whose products overflow int give an error,
// not a division by zero or an index out of range.
func TestTemplateHelpersOverflow(t *testing.T) {
	big := 1 << 32 // big*big wraps to 0 on 64-bit int
	l2 := []struct {
		name             string
		n                int
		channels, voxels int
	}{
		{"channels x voxels wraps to 0", 0, big, big},
		{"channels x voxels wraps to 0, data", 8, big, big},
		{"voxels above the data", 8, 1, 1 << 40},
	}
	for _, tc := range l2 {
		t.Run("l2/"+tc.name, func(t *testing.T) {
			err := L2NormaliseChannels(make([]float32, tc.n), tc.channels, tc.voxels)
			if err == nil {
				t.Fatalf("channels %d, voxels %d over %d values accepted",
					tc.channels, tc.voxels, tc.n)
			}
		})
	}
	kern := []struct {
		name                 string
		nDst, nFeat          int
		channels, size, kern int
	}{
		// size^3 = 2^63 wraps; times 2 channels it is 0, which an empty slice matches.
		{"size cubed wraps to 0", 16, 0, 2, 1 << 21, 2},
		// kernel^3 = 2^63 wraps the same way.
		{"kernel cubed wraps to 0", 0, 0, 2, 1 << 21, 1 << 21},
	}
	for _, tc := range kern {
		t.Run("kernel/"+tc.name, func(t *testing.T) {
			err := AddTemplateKernel(make([]float32, tc.nDst), make([]float32, tc.nFeat),
				tc.channels, tc.size, tc.kern)
			if err == nil {
				t.Fatalf("channels %d, size %d, kernel %d accepted", tc.channels, tc.size,
					tc.kern)
			}
		})
	}
}
