package onnxpb

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The helpers below encode protobuf by hand, independently of the decoder under test.

// varintBytes encodes v as a base-128 varint.
func varintBytes(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// key encodes the tag of field num with wire type w.
func key(num, w int) []byte { return varintBytes(uint64(num)<<3 | uint64(w)) }

// cat concatenates byte slices into a new one.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// fVarint, f64, f32 and fBytes encode one field of each wire type.
func fVarint(num int, v uint64) []byte { return cat(key(num, 0), varintBytes(v)) }
func f64(num int, v uint64) []byte {
	return cat(key(num, 1), binary.LittleEndian.AppendUint64(nil, v))
}
func f32(num int, v uint32) []byte {
	return cat(key(num, 5), binary.LittleEndian.AppendUint32(nil, v))
}
func fBytes(num int, data []byte) []byte {
	return cat(key(num, 2), varintBytes(uint64(len(data))), data)
}

// fString encodes a string field.
func fString(num int, s string) []byte { return fBytes(num, []byte(s)) }

// model wraps encoded TensorProtos in a GraphProto (as initializers) and a ModelProto.
func model(tensors ...[]byte) []byte {
	var g []byte
	for _, t := range tensors {
		g = append(g, fBytes(5, t)...)
	}
	return fBytes(7, g)
}

// packedVarints encodes vs as the payload of a packed repeated varint field.
func packedVarints(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, varintBytes(uint64(v))...)
	}
	return b
}

// rawFloats encodes vs as little-endian float32 bytes (raw_data or packed float_data).
func rawFloats(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// unpackedDims encodes each dim as its own dims field.
func unpackedDims(ds ...int64) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, fVarint(1, uint64(d))...)
	}
	return b
}

// unpackedFloats encodes each value as its own float_data field.
func unpackedFloats(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, f32(4, math.Float32bits(v))...)
	}
	return b
}

// floatType is the data_type field of a FLOAT tensor.
var floatType = fVarint(2, 1)

// parse runs ParseInitializers with the file name the error tests expect.
func parse(b []byte) (map[string]Tensor, error) { return ParseInitializers(b, "test.onnx") }

// TestEncodings decodes the same kinds of tensor written in every encoding the format
// allows: raw_data, packed and unpacked dims and float_data, repeated fields split in
// pieces, a scalar and an empty tensor.
func TestEncodings(t *testing.T) {
	vals := []float32{1.5, -2, 0, float32(math.Inf(1)), 3.25, 1e-30}
	cases := []struct {
		name   string
		tensor []byte
		want   Tensor
	}{
		{"raw", cat(fString(8, "w"), fBytes(1, packedVarints(2, 3)), floatType, fBytes(9, rawFloats(vals...))),
			Tensor{"w", []int64{2, 3}, vals}},
		{"packed", cat(fBytes(1, packedVarints(3, 2)), floatType, fBytes(4, rawFloats(vals...)), fString(8, "w")),
			Tensor{"w", []int64{3, 2}, vals}},
		{"unpacked", cat(floatType, unpackedDims(6), unpackedFloats(vals...), fString(8, "w")),
			Tensor{"w", []int64{6}, vals}},
		{"split", cat(fString(8, "w"), fBytes(1, packedVarints(1)), unpackedDims(2), fBytes(1, packedVarints(3)),
			floatType, fBytes(4, rawFloats(vals[:2]...)), unpackedFloats(vals[2:5]...), fBytes(4, rawFloats(vals[5]))),
			Tensor{"w", []int64{1, 2, 3}, vals}},
		{"large dims", cat(fString(8, "w"), unpackedDims(1, 1<<40, 0), floatType),
			Tensor{"w", []int64{1, 1 << 40, 0}, []float32{}}},
		{"scalar raw", cat(fString(8, "s"), floatType, fBytes(9, rawFloats(7))),
			Tensor{"s", []int64{}, []float32{7}}},
		{"scalar float_data", cat(fString(8, "s"), floatType, unpackedFloats(-7)),
			Tensor{"s", []int64{}, []float32{-7}}},
		{"empty", cat(fString(8, "e"), floatType, unpackedDims(0, 4)),
			Tensor{"e", []int64{0, 4}, []float32{}}},
		{"last name wins", cat(fString(8, "old"), floatType, fString(8, "new"), fBytes(9, rawFloats(1))),
			Tensor{"new", []int64{}, []float32{1}}},
		{"last raw_data wins", cat(fString(8, "r"), floatType, fBytes(9, rawFloats(1, 2)), fBytes(9, rawFloats(3))),
			Tensor{"r", []int64{}, []float32{3}}},
		{"data_type as 10-byte varint", cat(fString(8, "t"), key(2, 0),
			[]byte{0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, fBytes(9, rawFloats(5))),
			Tensor{"t", []int64{}, []float32{5}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(model(c.tensor))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d tensors, want 1: %v", len(got), got)
			}
			g := got[c.want.Name]
			if g.Name != c.want.Name || !reflect.DeepEqual(g.Dims, c.want.Dims) {
				t.Fatalf("got %q %v, want %q %v", g.Name, g.Dims, c.want.Name, c.want.Dims)
			}
			if len(g.Data) != len(c.want.Data) {
				t.Fatalf("%d values, want %d", len(g.Data), len(c.want.Data))
			}
			for i := range g.Data {
				if math.Float32bits(g.Data[i]) != math.Float32bits(c.want.Data[i]) {
					t.Errorf("value %d: %v, want %v", i, g.Data[i], c.want.Data[i])
				}
			}
		})
	}
}

// TestSkipsUnknownFields puts an unknown field of every wire type before and after the
// known ones at each level (model, graph, tensor), and fields of the same numbers as the
// ones read but in other messages; the result must be what the plain model gives.
func TestSkipsUnknownFields(t *testing.T) {
	// junk holds one unknown field of each wire type; the length-delimited one holds bytes
	// that would be an initializer and a graph if the parser looked inside.
	junk := func(num int) []byte {
		return cat(fVarint(num, 1<<63), f64(num+1, math.MaxUint64), f32(num+2, 0xffffffff),
			fBytes(num+3, model(cat(fString(8, "ghost"), floatType))), fBytes(num+4, nil),
			fVarint(maxFieldNum, 0))
	}
	tensor := cat(fString(8, "w"), floatType, unpackedDims(2), fBytes(9, rawFloats(1, 2)))
	plain, err := parse(model(tensor))
	if err != nil {
		t.Fatal(err)
	}

	tensorJunk := cat(junk(20), tensor[:3], fVarint(3000, 5), tensor[3:], junk(40),
		fVarint(7, 3), fBytes(5, []byte{0xff}), fBytes(10, rawFloats(9)), fBytes(6, []byte("s")))
	// A node (GraphProto field 1) whose bytes are not a valid message: nodes are skipped
	// unread. A non-float initializer (INT64 with int64_data) is ignored.
	node := fBytes(1, []byte{0xff, 0xff, 0xff})
	int64Init := cat(fString(8, "shape"), fVarint(2, 7), fBytes(7, packedVarints(1, 2)), unpackedDims(2))
	graph := cat(junk(20), node, fBytes(5, tensorJunk), fString(2, "graph name"), fBytes(5, int64Init), junk(60))
	full := cat(junk(30), fVarint(1, 8), fBytes(7, graph), fBytes(8, fString(1, "")), junk(50))

	got, err := parse(full)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, plain) {
		t.Errorf("with unknown fields: %v, want %v", got, plain)
	}
}

// TestIgnoresOtherTypes checks that initializers of other data types are left out without
// an error, even when their contents would be refused for a FLOAT initializer.
func TestIgnoresOtherTypes(t *testing.T) {
	float := cat(fString(8, "f"), floatType, fBytes(9, rawFloats(1)))
	others := [][]byte{
		cat(fString(8, "i64"), fVarint(2, 7), fBytes(9, []byte{1, 2, 3})),                // INT64, odd byte count
		cat(fString(8, "f16"), fVarint(2, 10), unpackedDims(4), fBytes(9, []byte{0, 0})), // FLOAT16
		cat(fString(8, "ext"), fVarint(2, 11), fVarint(14, 1)),                           // DOUBLE, external
		cat(fVarint(2, 6), fBytes(9, []byte{1, 0, 0, 0})),                                // INT32, no name
		cat(fString(8, "undefined"), fBytes(9, rawFloats(1))),                            // no data_type
	}
	got, err := parse(model(append([][]byte{float}, others...)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["f"].Data[0] != 1 {
		t.Errorf("got %v, want only f", got)
	}
	// Several graph fields are merged, as protobuf does.
	two := cat(model(float), model(cat(fString(8, "g"), floatType, unpackedFloats(2))))
	got, err = parse(two)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["g"].Data[0] != 2 {
		t.Errorf("two graph fields: got %v, want f and g", got)
	}
	// A graph without initializers is valid and yields an empty map.
	got, err = parse(fBytes(7, nil))
	if err != nil || len(got) != 0 {
		t.Errorf("empty graph: %v, %v", got, err)
	}
}

// TestNoSharedMemory checks that the result does not alias the input bytes.
func TestNoSharedMemory(t *testing.T) {
	b := model(cat(fString(8, "w"), floatType, unpackedDims(2), fBytes(9, rawFloats(1, 2))))
	got, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if w := got["w"]; w.Name != "w" || w.Data[0] != 1 || w.Data[1] != 2 {
		t.Errorf("result changed with the input: %v", w)
	}
}

// TestTruncation cuts a valid model, one graph field holding initializers of every
// encoding, at every byte: each prefix must be refused with an error, not a panic.
func TestTruncation(t *testing.T) {
	b := model(
		cat(fString(8, "a"), floatType, fBytes(1, packedVarints(2, 300)), fBytes(4, rawFloats(make([]float32, 600)...))),
		cat(fString(8, "b"), floatType, unpackedDims(2), unpackedFloats(1, 2), f64(99, 1)),
		cat(fString(8, "c"), floatType, fBytes(9, rawFloats(4)), fVarint(1000000, 1<<62)),
	)
	if _, err := parse(b); err != nil {
		t.Fatalf("whole model: %v", err)
	}
	for n := 0; n < len(b); n++ {
		got, err := parse(b[:n])
		if err == nil {
			t.Fatalf("prefix of %d of %d bytes: no error, got %v", n, len(b), got)
		}
		if !strings.HasPrefix(err.Error(), "onnxpb: test.onnx: ") {
			t.Fatalf("prefix of %d bytes: error %q does not name the file", n, err)
		}
	}
}

// TestErrors feeds malformed models and checks that each is refused with an error naming
// the file and the problem.
func TestErrors(t *testing.T) {
	ok := cat(fString(8, "w"), floatType, unpackedDims(2), fBytes(9, rawFloats(1, 2)))
	tooLong := cat(key(7, 2), varintBytes(1<<62), []byte{0})
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty file", nil, "no graph"},
		{"no graph", fVarint(1, 8), "no graph"},
		{"truncated tag", []byte{0x80}, "truncated field tag varint at byte 0"},
		{"truncated varint value", cat(key(1, 0), []byte{0xff, 0xff}), "truncated field 1 varint at byte 1"},
		{"varint over 64 bits", cat(key(1, 0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}), "overflows 64 bits"},
		{"11-byte varint", cat(key(1, 0), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), "overflows 64 bits"},
		{"truncated 64-bit", cat(key(3, 1), []byte{1, 2, 3}), "truncated 64-bit field 3 at byte 0: 3 bytes left, need 8"},
		{"truncated 32-bit", cat(key(3, 5), []byte{1, 2, 3}), "truncated 32-bit field 3"},
		{"length beyond buffer", cat(key(7, 2), varintBytes(10), []byte{1, 2}), "has length 10, beyond the 2 bytes left"},
		{"huge length", tooLong, "has length 4611686018427387904"},
		{"length beyond inner message", model(cat(fString(8, "w"), key(9, 2), varintBytes(5), []byte{1})), "initializer 0 (\"w\"): field 9 at byte"},
		{"group at model level", cat(key(30, 3), key(30, 4)), "is a group"},
		{"end group", key(30, 4), "is a group"},
		{"group in graph", fBytes(7, key(9, 3)), "graph: field 9 at byte 2 is a group"},
		{"group in tensor", model(cat(ok, key(20, 3), key(20, 4))), "initializer 0 (\"w\"): field 20 at byte 21 is a group"},
		{"wire type 6", key(5, 6), "invalid wire type 6"},
		{"wire type 7", model(cat(ok, key(5, 7))), "invalid wire type 7"},
		{"field number 0", []byte{0x00}, "invalid field number 0"},
		{"field number too large", varintBytes(uint64(maxFieldNum+1) << 3), "invalid field number 536870912"},
		{"graph as varint", fVarint(7, 1), "ModelProto.graph) at byte 0 has wire type varint, want length-delimited"},
		{"initializer as varint", fBytes(7, fVarint(5, 1)), "GraphProto.initializer"},
		{"name as varint", model(cat(ok, fVarint(8, 1))), "(name) at byte"},
		{"dims as 32-bit", model(cat(ok, f32(1, 1))), "(dims) at byte"},
		{"float_data as 64-bit", model(cat(ok, f64(4, 1))), "(float_data) at byte"},
		{"data_type as bytes", model(cat(ok, fBytes(2, []byte{1}))), "(data_type)"},
		{"raw count", model(cat(fString(8, "w"), floatType, unpackedDims(2, 3), fBytes(9, rawFloats(1, 2)))),
			"initializer 0 (\"w\"): raw_data holds 8 bytes, want 4 x product(dims [2 3]) = 4 x 6"},
		{"raw not a multiple of 4", model(cat(fString(8, "w"), floatType, fBytes(9, []byte{1, 2, 3}))), "raw_data holds 3 bytes"},
		{"missing data", model(cat(fString(8, "w"), floatType, unpackedDims(3))), "raw_data holds 0 bytes"},
		{"float_data count", model(cat(fString(8, "w"), floatType, unpackedDims(3), unpackedFloats(1, 2))),
			"float_data holds 2 values, want product(dims [3]) = 3"},
		{"packed float_data not a multiple of 4", model(cat(fString(8, "w"), floatType, fBytes(4, []byte{1, 2, 3, 4, 5}))),
			"holds 5 bytes, not a multiple of 4"},
		{"packed dims end inside a varint", model(cat(fString(8, "w"), floatType, fBytes(1, []byte{0x02, 0x80}))),
			"end inside a varint"},
		{"packed dims varint overflow", model(cat(fString(8, "w"), floatType,
			fBytes(1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}))), "overflows 64 bits"},
		{"negative dim", model(cat(fString(8, "w"), floatType, fBytes(1, packedVarints(2, -1)))), "dim 1 is negative"},
		{"dims overflow", model(cat(fString(8, "w"), floatType, unpackedDims(1<<32, 1<<32))), "product overflows int64"},
		{"dims overflow with data", model(cat(fString(8, "w"), floatType, unpackedDims(math.MaxInt64, 2), fBytes(9, rawFloats(1)))),
			"product overflows int64"},
		{"huge dims, little data", model(cat(fString(8, "w"), floatType, unpackedDims(1<<40, 1<<20), fBytes(9, rawFloats(1)))),
			"raw_data holds 4 bytes, want 4 x product(dims [1099511627776 1048576]) = 4 x 1152921504606846976"},
		{"duplicate names", model(ok, ok), "initializer 1 (\"w\"): duplicate name"},
		{"duplicate with a non-float", model(cat(fString(8, "w"), fVarint(2, 7)), ok), "initializer 1 (\"w\"): duplicate name"},
		{"duplicate across graphs", cat(model(ok), model(ok)), "duplicate name"},
		{"no name", model(cat(floatType, fBytes(9, rawFloats(1)))), "initializer 0: float initializer without a name"},
		{"external location", model(cat(ok, fVarint(14, 1))), "external data (data_location 1, 0 external_data entries), which is not supported"},
		{"external_data entries", model(cat(fString(8, "w"), floatType, unpackedDims(2),
			fBytes(13, cat(fString(1, "location"), fString(2, "w.bin"))))), "(data_location 0, 1 external_data entries), which is not supported"},
		{"segment", model(cat(ok, fBytes(3, cat(fVarint(1, 0), fVarint(2, 2))))), "segmented tensor"},
		{"raw and float_data", model(cat(ok, unpackedFloats(1, 2))), "both raw_data (8 bytes) and float_data (2 values)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(c.b)
			if err == nil {
				t.Fatalf("no error; got %v", got)
			}
			if got != nil {
				t.Errorf("both a result and an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "onnxpb: test.onnx: ") || !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want it to name test.onnx and contain %q", msg, c.want)
			}
		})
	}
}

// TestReadInitializersFile reads a model from disk and checks the errors for missing,
// non-regular and oversized files.
func TestReadInitializersFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(p, model(cat(fString(8, "w"), floatType, fBytes(9, rawFloats(4, 5)), unpackedDims(2))), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadInitializers(p)
	if err != nil {
		t.Fatal(err)
	}
	if w := got["w"]; len(got) != 1 || !reflect.DeepEqual(w.Dims, []int64{2}) || !reflect.DeepEqual(w.Data, []float32{4, 5}) {
		t.Errorf("got %v", got)
	}

	bad := filepath.Join(dir, "bad.onnx")
	if err := os.WriteFile(bad, fBytes(7, fBytes(5, fVarint(8, 1))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInitializers(bad); err == nil || !strings.Contains(err.Error(), bad+": initializer 0: field 8 (name)") {
		t.Errorf("malformed file: error %v, want one naming %s and the name field", err, bad)
	}
	missing := filepath.Join(dir, "missing.onnx")
	if _, err := ReadInitializers(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error %v, want one naming it", err)
	}
	if _, err := ReadInitializers(dir); err == nil || !strings.Contains(err.Error(), dir+": not a regular file") {
		t.Errorf("directory: error %v, want not a regular file", err)
	}

	// A sparse file one byte over the cap: refused from its size, before it is read.
	huge := filepath.Join(dir, "huge.onnx")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	terr := f.Truncate(MaxFileSize + 1)
	f.Close()
	if terr != nil {
		t.Skipf("skipping the size cap check: cannot make a sparse file of %d bytes: %v", MaxFileSize+1, terr)
	}
	if _, err := ReadInitializers(huge); err == nil || !strings.Contains(err.Error(), huge+": file of 4294967297 bytes is larger than") {
		t.Errorf("oversized file: error %v, want the size limit", err)
	}
}
