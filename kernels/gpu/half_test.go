package gpu

import (
	"math"
	"testing"
)

// toHalf rounds f to the nearest IEEE half float (ties to even) and returns its bits: the
// reference for the fp16 encoder input.
func toHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	man := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN: keep it quiet
		return sign | 0x7e00
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint(14 - exp)
		h, rem, half := man>>shift, man&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | man>>13
	if rem := man & 0x1fff; rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is the right result, up to infinity
	}
	return sign | uint16(h)
}

func TestToHalf(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{-2.5, 0xc100},
		{65504, 0x7bff},
		{65520, 0x7c00}, // halfway to the next binade rounds to even: infinity
		{1.0 / 3, 0x3555},
		{2 + 1.0/1024, 0x4000}, // a tie, to the even mantissa 0
		{2 + 3.0/1024, 0x4002}, // a tie, to the even mantissa 2
		{5.9604645e-8, 0x0001}, // 2^-24, the smallest subnormal
		{2.9802322e-8, 0x0000}, // 2^-25, a tie to the even zero
		{0, 0},
		{-2.1179, 0xc03c},
	}
	for _, tc := range tests {
		if got := toHalf(tc.in); got != tc.want {
			t.Errorf("toHalf(%v) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}
