package localize

import (
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// fakeOffsets are the patch offsets the fake network's feature channels sample: channel c
// of every scale reads the patch at (z, y, x)*stride + fakeOffsets[c].
var fakeOffsets = [][3]int{{0, 0, 0}, {1, 2, 3}, {-2, 1, 0}, {3, -1, 2}}

// fakeNet returns a Network of backend.Fake models: position is the patch's
// intensity-weighted centroid (patch coordinates / 64), and feature s at edge e samples the
// patch on a stride-64/e grid at a few offsets, minus 0.55. Its features are locally
// distinctive on random texture, so the similarity search recovers shifts exactly, and every
// batch entry is computed on its own, so results cannot depend on the batch size.
func fakeNet(t testing.TB) *Network {
	t.Helper()
	in := []backend.TensorInfo{{Name: InputPatch, Shape: []int64{-1, 1, 64, 64, 64},
		Type: backend.Float32}}
	c := int64(len(fakeOffsets))
	posInfo := backend.TensorInfo{Name: OutputPosition, Shape: []int64{-1, 3},
		Type: backend.Float32}
	full := []backend.TensorInfo{posInfo}
	for s, e := range []int64{16, 32, 64} {
		full = append(full, backend.TensorInfo{Name: OutputFeatures[s],
			Shape: []int64{-1, c, e, e, e}, Type: backend.Float32})
	}
	run := func(in map[string]backend.Tensor, batch int64) (map[string][]float32, error) {
		x := in[InputPatch].Data
		out := map[string][]float32{}
		for b := 0; b < int(batch); b++ {
			p := x[b*patchVoxels : (b+1)*patchVoxels]
			out[OutputPosition] = append(out[OutputPosition], fakePosition(p)...)
			for s, e := range []int{16, 32, 64} {
				out[OutputFeatures[s]] = append(out[OutputFeatures[s]], fakeFeature(p, e)...)
			}
		}
		return out, nil
	}
	return &Network{
		Full:        backend.NewFake(in, full, run),
		Encoder:     backend.NewFake(in, []backend.TensorInfo{posInfo}, run),
		ModelSHA256: "fake0000000000000000",
	}
}

func fakePosition(p []float32) []float32 {
	var s, w [3]float64
	var tot float64
	for z := 0; z < Patch; z++ {
		for y := 0; y < Patch; y++ {
			for x := 0; x < Patch; x++ {
				v := float64(p[(z*Patch+y)*Patch+x])
				tot += v
				w[0] += v * float64(z)
				w[1] += v * float64(y)
				w[2] += v * float64(x)
			}
		}
	}
	for a := 0; a < 3; a++ {
		if tot > 0 {
			s[a] = w[a] / tot / Patch
		}
	}
	return []float32{float32(s[0]), float32(s[1]), float32(s[2])}
}

func fakeFeature(p []float32, e int) []float32 {
	st := Patch / e
	out := make([]float32, 0, len(fakeOffsets)*e*e*e)
	for _, o := range fakeOffsets {
		for z := 0; z < e; z++ {
			for y := 0; y < e; y++ {
				for x := 0; x < e; x++ {
					zz, yy, xx := z*st+o[0], y*st+o[1], x*st+o[2]
					v := float32(-0.55) // about zero-mean on the texture
					if zz >= 0 && zz < Patch && yy >= 0 && yy < Patch && xx >= 0 && xx < Patch {
						v += p[(zz*Patch+yy)*Patch+xx]
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// lasVolume returns a 3 mm LAS volume of nx*ny*nz voxels (i, j, k) filled by f(z, y, x).
func lasVolume(t testing.TB, nx, ny, nz int, f func(z, y, x int) float32) *volume.Volume {
	t.Helper()
	v, err := volume.New([3]int{nx, ny, nz}, [3]float64{3, 3, 3})
	if err != nil {
		t.Fatal(err)
	}
	v.Affine[0][0] = -3 // i towards Left
	for z := 0; z < nz; z++ {
		for y := 0; y < ny; y++ {
			for x := 0; x < nx; x++ {
				v.Data[v.Index(x, y, z)] = f(z, y, x)
			}
		}
	}
	return v
}

// texture returns seeded random values in [0.1, 1) over a (z, y, x) extent; at() reads it
// shifted by d, 0 outside.
type texture struct {
	d    [3]int
	vals []float32
}

func newTexture(seed uint64, d [3]int) *texture {
	r := rand.New(rand.NewPCG(seed, 1))
	t := &texture{d: d, vals: make([]float32, d[0]*d[1]*d[2])}
	for i := range t.vals {
		t.vals[i] = 0.1 + 0.9*r.Float32()
	}
	return t
}

func (t *texture) at(z, y, x int) float32 {
	if z < 0 || y < 0 || x < 0 || z >= t.d[0] || y >= t.d[1] || x >= t.d[2] {
		return 0
	}
	return t.vals[(z*t.d[1]+y)*t.d[2]+x]
}

func prepare(t testing.TB, v *volume.Volume, name string, k Kind) *Grid {
	t.Helper()
	g, err := Prepare(v, name, k)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// volumeRPI returns an RPI volume at 1.5 mm filled with a ramp above -1000 HU.
func volumeRPI(nx, ny, nz int) (*volume.Volume, error) {
	v, err := volume.New([3]int{nx, ny, nz}, [3]float64{1.5, 1.5, 1.5})
	if err != nil {
		return nil, err
	}
	v.Affine[1][1], v.Affine[2][2] = -1.5, -1.5
	for i := range v.Data {
		v.Data[i] = float32(i%997) - 500
	}
	return v, nil
}
