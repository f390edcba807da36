package onnxpb

import (
	"math"
	"testing"
)

// FuzzParse feeds arbitrary bytes to ParseInitializers, which must return tensors or an
// error, never panic, and never return more float32 values than the input's bytes could
// hold. Every tensor returned must be consistent: keyed by its name, with non-negative dims
// whose product is its value count. Seeds: small models in every encoding, with unknown
// fields, and damaged copies of them.
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		model(cat(fString(8, "w"), floatType, fBytes(1, packedVarints(2, 2)), fBytes(9, rawFloats(1, 2, 3, 4)))),
		model(cat(fString(8, "p"), floatType, fBytes(1, packedVarints(3)), fBytes(4, rawFloats(1, 2, 3))),
			cat(fString(8, "u"), floatType, unpackedDims(2, 1), unpackedFloats(5, 6))),
		model(cat(fString(8, "s"), floatType, fBytes(9, rawFloats(7))),
			cat(fString(8, "i"), fVarint(2, 7), fBytes(7, packedVarints(1, 2)), unpackedDims(2))),
		cat(fVarint(1, 8), f64(99, 1), model(cat(fString(8, "w"), f32(77, 3), floatType, unpackedDims(0))), fBytes(8, fString(1, ""))),
		model(cat(fString(8, "x"), floatType, unpackedDims(1), fVarint(14, 1))),
		model(cat(fString(8, "x"), floatType, unpackedDims(1), fBytes(3, fVarint(1, 0)))),
		fBytes(7, nil),
		{},
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		if len(s) > 0 {
			d := append([]byte(nil), s...)
			d[len(d)/3] ^= 0x55
			f.Add(d)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseInitializers(b, "fuzz.onnx")
		if err != nil {
			if got != nil {
				t.Fatal("tensors and an error both returned")
			}
			return
		}
		values := 0
		for name, tn := range got {
			if name == "" || tn.Name != name {
				t.Fatalf("tensor %q stored under %q", tn.Name, name)
			}
			n := int64(1)
			for _, d := range tn.Dims {
				if d < 0 {
					t.Fatalf("%s: negative dim in %v", name, tn.Dims)
				}
				if d != 0 && n > math.MaxInt64/d {
					n = math.MaxInt64 // cannot match any len; caught below
				} else {
					n *= d
				}
			}
			if int64(len(tn.Data)) != n {
				t.Fatalf("%s: %d values for dims %v", name, len(tn.Data), tn.Dims)
			}
			values += len(tn.Data)
		}
		if values > len(b)/4 {
			t.Fatalf("%d values from %d bytes", values, len(b))
		}
	})
}
