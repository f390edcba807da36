package volume

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// nibabelCodes holds affines with the codes nibabel 5.0's aff2axcodes gives them ('?' where
// it gives None). The rows were printed by this script, run once with Debian's
// /usr/bin/python3 (python3-nibabel 5.0, numpy); rerun it to extend the table:
//
//	import numpy as np
//	from nibabel.orientations import aff2axcodes
//
//	def rot(axis, deg):
//	    t = np.deg2rad(deg); c, s = np.cos(t), np.sin(t)
//	    m = np.eye(3)
//	    a, b = [(1, 2), (0, 2), (0, 1)][axis]
//	    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
//	    return m
//
//	def aff(m3, zooms=(1, 1, 1), t=(0, 0, 0)):
//	    a = np.eye(4)
//	    a[:3, :3] = np.asarray(m3) @ np.diag(zooms)
//	    a[:3, 3] = t
//	    return a
//
//	P = np.eye(3)
//	cases = [
//	    ("identity", aff(P)),
//	    ("lps dicom", aff(np.diag([-1, -1, 1]), (0.7, 0.7, 2.5), (180, 200, -300))),
//	    ("las", aff(np.diag([-1, 1, 1]), (0.8, 0.8, 5))),
//	    ("permuted sar", aff(P[:, [2, 1, 0]] * [1, 1, 1], (3, 1, 1))),
//	    ("permuted ipl", aff(-P[:, [2, 1, 0]], (1, 2, 3))),
//	    ("permuted asl", aff(P[:, [1, 2, 0]] * [1, 1, -1])),
//	    ("oblique z 20", aff(rot(2, 20), (0.9, 0.9, 3))),
//	    ("oblique z 44.9", aff(rot(2, 44.9))),
//	    ("oblique z 45.1", aff(rot(2, 45.1))),
//	    ("oblique z 135.5", aff(rot(2, 135.5), (1, 1, 2))),
//	    ("oblique x 30 y 40", aff(rot(1, 40) @ rot(0, 30), (1.5, 0.5, 2))),
//	    ("oblique zyx", aff(rot(2, -70) @ rot(1, 25) @ rot(0, 50) @ np.diag([-1, 1, 1]))),
//	    ("oblique coronal", aff(rot(0, -88) @ np.diag([1, 1, -1]), (0.4, 0.4, 4))),
//	    ("sheared", aff(np.array([[1, 0.9, 0], [0, 1, 0], [0.2, 0, 1]]))),
//	    ("strong shear", aff(np.array([[1, 1.5, 0], [0.1, 1, 0], [0, 0.3, -1]]))),
//	    ("polar not argmax", aff([[1.7, -1.1, 0.5], [-0.3, 0, 0.4], [1, -0.7, 1.3]])),
//	    ("anisotropic oblique", aff(rot(1, 60) @ np.diag([1, -1, 1]), (0.3, 0.3, 7))),
//	    ("zero column", aff(np.diag([1, 1, 0]))),
//	    ("rank two", aff(np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]]))),
//	]
//	for name, a in cases:
//	    code = "".join(c if c is not None else "?" for c in aff2axcodes(a))
//	    rows = "".join("\t\t{%s},\n" % ", ".join(repr(float(x)) for x in r) for r in a)
//	    print('\t{"%s", Affine{\n%s\t}, "%s"},' % (name, rows, code))
//
// "polar not argmax" is a sheared affine where a greedy argmax over the raw normalised
// columns would say "RIA": only the polar decomposition gives nibabel's "PLS".
var nibabelCodes = []struct {
	name string
	aff  Affine
	code string
}{
	{"identity", Affine{
		{1.0, 0.0, 0.0, 0.0},
		{0.0, 1.0, 0.0, 0.0},
		{0.0, 0.0, 1.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAS"},
	{"lps dicom", Affine{
		{-0.7, 0.0, 0.0, 180.0},
		{0.0, -0.7, 0.0, 200.0},
		{0.0, 0.0, 2.5, -300.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "LPS"},
	{"las", Affine{
		{-0.8, 0.0, 0.0, 0.0},
		{0.0, 0.8, 0.0, 0.0},
		{0.0, 0.0, 5.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "LAS"},
	{"permuted sar", Affine{
		{0.0, 0.0, 1.0, 0.0},
		{0.0, 1.0, 0.0, 0.0},
		{3.0, 0.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "SAR"},
	{"permuted ipl", Affine{
		{0.0, 0.0, -3.0, 0.0},
		{0.0, -2.0, 0.0, 0.0},
		{-1.0, 0.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "IPL"},
	{"permuted asl", Affine{
		{0.0, 0.0, -1.0, 0.0},
		{1.0, 0.0, 0.0, 0.0},
		{0.0, 1.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "ASL"},
	{"oblique z 20", Affine{
		{0.8457233587073175, -0.3078181289931019, 0.0, 0.0},
		{0.3078181289931019, 0.8457233587073175, 0.0, 0.0},
		{0.0, 0.0, 3.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAS"},
	{"oblique z 44.9", Affine{
		{0.7083398377245289, -0.705871570678681, 0.0, 0.0},
		{0.705871570678681, 0.7083398377245289, 0.0, 0.0},
		{0.0, 0.0, 1.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAS"},
	{"oblique z 45.1", Affine{
		{0.7058715706786811, -0.7083398377245289, 0.0, 0.0},
		{0.7083398377245289, 0.7058715706786811, 0.0, 0.0},
		{0.0, 0.0, 1.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "ALS"},
	{"oblique z 135.5", Affine{
		{-0.7132504491541815, -0.7009092642998511, 0.0, 0.0},
		{0.7009092642998511, -0.7132504491541815, 0.0, 0.0},
		{0.0, 0.0, 2.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "LPS"},
	{"oblique x 30 y 40", Affine{
		{1.1490666646784673, -0.16069690242163479, -1.1133407984528385, 0.0},
		{0.0, 0.4330127018922193, -0.9999999999999998, 0.0},
		{0.9641814145298089, 0.1915111107797445, 1.326827896337877, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAS"},
	{"oblique zyx", Affine{
		{-0.3099755192194448, 0.49329567739601965, -0.8127573759413308, 0.0},
		{0.8516507396391464, 0.5240665068116805, -0.006731575617752172, 0.0},
		{-0.42261826174069944, 0.6942720440148838, 0.5825634160695853, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "ASL"},
	{"oblique coronal", Affine{
		{0.4, 0.0, 0.0, 0.0},
		{0.0, 0.013959798681000432, -3.9975633080763835, 0.0},
		{0.0, -0.3997563308076384, -0.13959798681000432, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RIP"},
	{"sheared", Affine{
		{1.0, 0.9, 0.0, 0.0},
		{0.0, 1.0, 0.0, 0.0},
		{0.2, 0.0, 1.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAS"},
	{"strong shear", Affine{
		{1.0, 1.5, 0.0, 0.0},
		{0.1, 1.0, 0.0, 0.0},
		{0.0, 0.3, -1.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RAI"},
	{"polar not argmax", Affine{
		{1.7, -1.1, 0.5, 0.0},
		{-0.3, 0.0, 0.4, 0.0},
		{1.0, -0.7, 1.3, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "PLS"},
	{"anisotropic oblique", Affine{
		{0.15000000000000002, 0.0, -6.0621778264910695, 0.0},
		{0.0, -0.3, 0.0, 0.0},
		{0.2598076211353315, 0.0, 3.500000000000001, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "SPL"},
	{"zero column", Affine{
		{1.0, 0.0, 0.0, 0.0},
		{0.0, 1.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "RA?"},
	{"rank two", Affine{
		{1.0, 1.0, 0.0, 0.0},
		{0.0, 0.0, 1.0, 0.0},
		{0.0, 0.0, 0.0, 0.0},
		{0.0, 0.0, 0.0, 1.0},
	}, "R?A"},
}

func TestOrientationOfMatchesNibabelTable(t *testing.T) {
	for _, tc := range nibabelCodes {
		t.Run(tc.name, func(t *testing.T) {
			if got := OrientationOf(tc.aff); got != tc.code {
				t.Errorf("OrientationOf = %q, nibabel says %q", got, tc.code)
			}
			_, err := AffineOrientation(tc.aff)
			if wantErr := strings.Contains(tc.code, "?"); (err != nil) != wantErr {
				t.Errorf("AffineOrientation error = %v, want error: %v", err, wantErr)
			}
		})
	}
}

// nibabelScript reads a JSON list of 4x4 affines on stdin and prints their aff2axcodes.
const nibabelScript = `
import json, sys
import numpy as np
from nibabel.orientations import aff2axcodes
affs = json.load(sys.stdin)
out = ["".join(c or "?" for c in aff2axcodes(np.array(a))) for a in affs]
json.dump(out, sys.stdout)
`

// TestOrientationOfMatchesNibabelLive compares random oblique and sheared affines with
// nibabel itself when Debian's python3-nibabel is installed.
func TestOrientationOfMatchesNibabelLive(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipping: %s not found (needs python3-nibabel)", python)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	var affs []Affine
	for len(affs) < 400 {
		var a Affine
		for r := 0; r < 3; r++ {
			for c := 0; c < 4; c++ {
				a[r][c] = rng.NormFloat64() * 2
			}
		}
		a[3][3] = 1
		if len(affs)%2 == 0 {
			// Mostly axis-aligned with a random signed permutation plus small tilt.
			p := rng.Perm(3)
			for c := 0; c < 3; c++ {
				for r := 0; r < 3; r++ {
					a[r][c] *= 0.15
				}
				a[p[c]][c] = float64(1-2*rng.IntN(2)) * (0.5 + 3*rng.Float64())
			}
		}
		if nearTie(a) {
			continue // a rounding difference could pick either axis
		}
		affs = append(affs, a)
	}
	in, err := json.Marshal(affs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", nibabelScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "ModuleNotFoundError") {
			t.Skipf("skipping: nibabel not importable by %s", python)
		}
		t.Fatalf("python: %v: %s", err, stderr.String())
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(affs) {
		t.Fatalf("python gave %d codes for %d affines", len(want), len(affs))
	}
	for n, a := range affs {
		if got := OrientationOf(a); got != want[n] {
			t.Errorf("affine %v: OrientationOf = %q, nibabel %q", a, got, want[n])
		}
	}
}

// nearTie reports whether choosing an axis for a might hinge on the last bits of the SVD:
// two candidate entries of the polar factor within 1e-6 of each other during the greedy pick.
func nearTie(a Affine) bool {
	var m [3][3]float64
	for c := 0; c < 3; c++ {
		n := math.Sqrt(a[0][c]*a[0][c] + a[1][c]*a[1][c] + a[2][c]*a[2][c])
		for r := 0; r < 3; r++ {
			m[r][c] = a[r][c] / n
		}
	}
	rot := polarFactor(m)
	for c := 0; c < 3; c++ {
		best, second := -1.0, -1.0
		bestRow := 0
		for r := 0; r < 3; r++ {
			v := math.Abs(rot[r][c])
			if v > best {
				best, second, bestRow = v, best, r
			} else if v > second {
				second = v
			}
		}
		if best-second < 1e-6 || best < 1e-6 {
			return true
		}
		for cc := 0; cc < 3; cc++ {
			rot[bestRow][cc] = 0
		}
	}
	return false
}

func TestParseOrientation(t *testing.T) {
	tests := []struct {
		code string
		want Orientation
		err  bool
	}{
		{"RAS", Orientation{{WorldX, 1}, {WorldY, 1}, {WorldZ, 1}}, false},
		{"LPS", Orientation{{WorldX, -1}, {WorldY, -1}, {WorldZ, 1}}, false},
		{"las", Orientation{{WorldX, -1}, {WorldY, 1}, {WorldZ, 1}}, false},
		{"SIR", Orientation{}, true},
		{"IPL", Orientation{{WorldZ, -1}, {WorldY, -1}, {WorldX, -1}}, false},
		{"ASR", Orientation{{WorldY, 1}, {WorldZ, 1}, {WorldX, 1}}, false},
		{"RA", Orientation{}, true},
		{"RASR", Orientation{}, true},
		{"RLS", Orientation{}, true},
		{"RAX", Orientation{}, true},
		{"", Orientation{}, true},
	}
	for _, tc := range tests {
		got, err := ParseOrientation(tc.code)
		if tc.err {
			if err == nil || !errors.Is(err, ErrOrientation) {
				t.Errorf("ParseOrientation(%q) error = %v, want ErrOrientation", tc.code, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseOrientation(%q) = %v, %v; want %v", tc.code, got, err, tc.want)
		}
		if !got.Valid() || got.String() != strings.ToUpper(tc.code) {
			t.Errorf("ParseOrientation(%q).String() = %q", tc.code, got.String())
		}
	}
}

// allCodes returns the 48 orientation codes (6 axis orders times 8 sign choices).
func allCodes() []string {
	perms := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	var codes []string
	for _, p := range perms {
		for signs := 0; signs < 8; signs++ {
			var o Orientation
			for n := 0; n < 3; n++ {
				o[n] = Direction{World: p[n], Sign: 1 - 2*(signs>>n&1)}
			}
			codes = append(codes, o.String())
		}
	}
	return codes
}

// randomVolume returns an odd-sized volume of random values with the given 3x3 part and a
// translation.
func randomVolume(rng *rand.Rand, m [3][3]float64) *Volume {
	v, err := New([3]int{5, 7, 9}, [3]float64{1, 1, 1})
	if err != nil {
		panic(err)
	}
	for n := range v.Data {
		v.Data[n] = rng.Float32()*2000 - 1000
	}
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			v.Affine[r][c] = m[r][c]
		}
		v.Affine[r][3] = rng.Float64()*200 - 100
	}
	for c := 0; c < 3; c++ {
		v.Spacing[c] = math.Sqrt(m[0][c]*m[0][c] + m[1][c]*m[1][c] + m[2][c]*m[2][c])
	}
	return v
}

var sourceAffines = []struct {
	name   string
	m      [3][3]float64
	strict bool // the reoriented affine must give exactly the target code
}{
	{"ras", [3][3]float64{{0.8, 0, 0}, {0, 0.8, 0}, {0, 0, 2.5}}, true},
	{"lps", [3][3]float64{{-0.7, 0, 0}, {0, -0.7, 0}, {0, 0, 3}}, true},
	{"sir", [3][3]float64{{0, 0, 1.5}, {0, -2, 0}, {1, 0, 0}}, true},
	{"oblique", [3][3]float64{{0.9, 0.2, 0.1}, {-0.15, 1.1, 0.3}, {0.05, -0.4, 2.8}}, true},
}

func TestReorientRoundTripAll48(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, src := range sourceAffines {
		v := randomVolume(rng, src.m)
		orig := v.Clone()
		for _, code := range allCodes() {
			out, r, err := v.Reorient(code)
			if err != nil {
				t.Fatalf("%s -> %s: %v", src.name, code, err)
			}
			if got := OrientationOf(out.Affine); src.strict && got != code {
				t.Errorf("%s -> %s: reoriented affine has code %q", src.name, code, got)
			}
			for n := 0; n < 3; n++ {
				if out.Shape[n] != v.Shape[r.Perm[n]] || out.Spacing[n] != v.Spacing[r.Perm[n]] {
					t.Errorf("%s -> %s: axis %d shape/spacing %d/%v not permuted from %v/%v",
						src.name, code, n, out.Shape[n], out.Spacing[n], v.Shape, v.Spacing)
				}
			}
			back, err := r.Undo(out)
			if err != nil {
				t.Fatalf("%s -> %s: undo: %v", src.name, code, err)
			}
			if back.Shape != v.Shape || back.Affine != v.Affine || back.Spacing != v.Spacing {
				t.Errorf("%s -> %s: undo geometry %v %v %v", src.name, code, back.Shape,
					back.Spacing, back.Affine)
			}
			for n := range v.Data {
				if math.Float32bits(back.Data[n]) != math.Float32bits(v.Data[n]) {
					t.Fatalf("%s -> %s: voxel %d changed in round trip", src.name, code, n)
				}
			}
			// Twice reoriented: reorienting back to the source code also restores the data.
			again, _, err := out.Reorient(OrientationOf(v.Affine))
			if err != nil {
				t.Fatal(err)
			}
			if again.Shape != v.Shape || !equalData(again.Data, v.Data) {
				t.Errorf("%s -> %s -> back: data differ", src.name, code)
			}
		}
		if !equalData(v.Data, orig.Data) || v.Affine != orig.Affine {
			t.Fatalf("%s: Reorient modified its receiver", src.name)
		}
	}
}

func equalData(a, b []float32) bool {
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

func TestReorientKeepsWorldCoordinates(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, src := range sourceAffines {
		v := randomVolume(rng, src.m)
		for _, code := range []string{"RAS", "LPS", Canonical, "SPL", "IRA", "ALI"} {
			out, r, err := v.Reorient(code)
			if err != nil {
				t.Fatal(err)
			}
			for trial := 0; trial < 50; trial++ {
				q := [3]int{rng.IntN(out.Shape[0]), rng.IntN(out.Shape[1]),
					rng.IntN(out.Shape[2])}
				p := r.ToSource(q)
				if r.FromSource(p) != q {
					t.Fatalf("%s %s: FromSource(ToSource(%v)) = %v", src.name, code, q,
						r.FromSource(p))
				}
				if out.At(q[0], q[1], q[2]) != v.At(p[0], p[1], p[2]) {
					t.Fatalf("%s %s: voxel %v is not source voxel %v", src.name, code, q, p)
				}
				wq := out.Affine.Apply(toF(q))
				wp := v.Affine.Apply(toF(p))
				for a := 0; a < 3; a++ {
					if math.Abs(wq[a]-wp[a]) > 1e-9*(1+math.Abs(wp[a])) {
						t.Fatalf("%s %s: voxel %v at %v, source voxel %v at %v", src.name,
							code, q, wq, p, wp)
					}
				}
				// Fractional coordinates: consistent with IndexTransform and invertible.
				var qf [3]float64
				for a := range qf {
					qf[a] = rng.Float64() * float64(out.Shape[a]-1)
				}
				pf := r.ToSourceF(qf)
				viaT := r.IndexTransform().Apply(qf)
				back := r.FromSourceF(pf)
				for a := 0; a < 3; a++ {
					if math.Abs(pf[a]-viaT[a]) > 1e-12 || math.Abs(back[a]-qf[a]) > 1e-12 {
						t.Fatalf("%s %s: fractional %v -> %v (affine %v) -> %v", src.name,
							code, qf, pf, viaT, back)
					}
				}
			}
		}
	}
}

func toF(p [3]int) [3]float64 { return [3]float64{float64(p[0]), float64(p[1]), float64(p[2])} }

func TestReorientationBoxes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	v := randomVolume(rng, sourceAffines[1].m)
	for _, code := range allCodes() {
		_, r, err := v.Reorient(code)
		if err != nil {
			t.Fatal(err)
		}
		for trial := 0; trial < 20; trial++ {
			var lo, hi [3]int
			for a := 0; a < 3; a++ {
				x, y := rng.IntN(r.DstShape[a]), rng.IntN(r.DstShape[a])
				lo[a], hi[a] = min(x, y), max(x, y)
			}
			slo, shi := r.BoxToSource(lo, hi)
			// The source box must hold exactly the images of the reoriented box's voxels.
			want := (hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1) * (hi[2] - lo[2] + 1)
			got := (shi[0] - slo[0] + 1) * (shi[1] - slo[1] + 1) * (shi[2] - slo[2] + 1)
			if got != want {
				t.Fatalf("%s: box %v..%v -> %v..%v changes size", code, lo, hi, slo, shi)
			}
			for _, corner := range [][3]int{lo, hi, {lo[0], hi[1], lo[2]}} {
				p := r.ToSource(corner)
				for a := 0; a < 3; a++ {
					if p[a] < slo[a] || p[a] > shi[a] {
						t.Fatalf("%s: corner %v -> %v outside %v..%v", code, corner, p, slo,
							shi)
					}
				}
			}
			blo, bhi := r.BoxFromSource(slo, shi)
			if blo != lo || bhi != hi {
				t.Fatalf("%s: box %v..%v round trip gives %v..%v", code, lo, hi, blo, bhi)
			}
		}
	}
}

func TestReorientationApplyMatchesReorient(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	img := randomVolume(rng, sourceAffines[2].m)
	labels := img.Clone()
	for n := range labels.Data {
		labels.Data[n] = float32(rng.IntN(5))
	}
	_, r, err := img.Reorient(Canonical)
	if err != nil {
		t.Fatal(err)
	}
	viaApply, err := r.Apply(labels)
	if err != nil {
		t.Fatal(err)
	}
	direct, _, err := labels.Reorient(Canonical)
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(viaApply.Data, direct.Data) || viaApply.Affine != direct.Affine {
		t.Error("Apply on a label map differs from reorienting it directly")
	}
}

func TestReorientErrors(t *testing.T) {
	good, err := New([3]int{3, 4, 5}, [3]float64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	degenerate := good.Clone()
	degenerate.Affine[2][2] = 0
	nan := good.Clone()
	nan.Affine[0][1] = math.NaN()
	short := good.Clone()
	short.Data = short.Data[:10]
	tests := []struct {
		name   string
		v      *Volume
		target string
	}{
		{"bad code", good, "RAR"},
		{"empty code", good, ""},
		{"degenerate affine", degenerate, "RAS"},
		{"nan affine", nan, "RAS"},
		{"short data", short, "RAS"},
		{"nil volume", nil, "RAS"},
	}
	for _, tc := range tests {
		if _, _, err := tc.v.Reorient(tc.target); err == nil {
			t.Errorf("%s: Reorient succeeded", tc.name)
		} else if !strings.HasPrefix(err.Error(), "volume: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
	}
	_, r, err := good.Reorient("SPL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Undo(good); err == nil {
		t.Error("Undo accepted a volume of the source shape")
	}
	if _, err := r.Undo(nil); err == nil {
		t.Error("Undo accepted nil")
	}
	if _, err := r.Apply(nil); err == nil {
		t.Error("Apply accepted nil")
	}
	wrong, _ := New([3]int{4, 3, 5}, [3]float64{1, 1, 1})
	if _, err := r.Apply(wrong); err == nil {
		t.Error("Apply accepted a volume of the wrong shape")
	}
}

func BenchmarkReorient(b *testing.B) {
	v, err := New([3]int{512, 512, 128}, [3]float64{0.8, 0.8, 2.5})
	if err != nil {
		b.Fatal(err)
	}
	v.Affine[0][0], v.Affine[1][1] = -0.8, -0.8 // LPS
	for _, code := range []string{Canonical, "SPL"} {
		b.Run(code, func(b *testing.B) {
			b.SetBytes(int64(4 * v.Len()))
			for b.Loop() {
				if _, _, err := v.Reorient(code); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
