package volume

import "testing"

func TestAffineNear(t *testing.T) {
	a := Affine{{-0.8, 0, 0, 150.25}, {0, -0.8, 0, 180.5}, {0, 0, 2.5, -700}, {0, 0, 0, 1}}
	tests := []struct {
		name string
		edit func(*Affine)
		want bool
	}{
		{"identical", func(*Affine) {}, true},
		{"float32 rounding of a spacing", func(b *Affine) { b[0][0] = float64(float32(-0.8)) }, true},
		{"offset within tolerance relative to its size", func(b *Affine) { b[2][3] = -700.5 }, true},
		{"offset beyond tolerance", func(b *Affine) { b[1][3] += 0.5 }, false},
		{"axis flipped", func(b *Affine) { b[0][0] = 0.8 }, false},
		{"small entry, absolute tolerance", func(b *Affine) { b[0][1] = 2e-3 }, false},
	}
	for _, tc := range tests {
		b := a
		tc.edit(&b)
		if got := a.Near(b, 1e-3); got != tc.want {
			t.Errorf("%s: Near = %v, want %v", tc.name, got, tc.want)
		}
	}
}
