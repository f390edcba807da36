// Package onnxpb reads the float32 initializers (the weights) of an ONNX model file without
// a protobuf library, so that a native implementation of a network can load the same .onnx
// file ONNX Runtime runs.
//
// It decodes just enough of the protobuf wire format (varint, 64-bit, length-delimited and
// 32-bit fields) to walk ModelProto.graph (field 7), GraphProto.initializer (field 5) and
// the fields of each TensorProto it needs: dims (1), data_type (2), segment (3),
// float_data (4), name (8), raw_data (9), external_data (13) and data_location (14).
// Every other field, of any of those wire types, is skipped; groups (wire types 3 and 4)
// are refused, as are malformed tags and lengths.
//
// What is returned:
//
//   - Every initializer of the main graph whose data_type is FLOAT (1), with its dims and
//     its values in C order, taken from raw_data (little-endian) or from float_data,
//     packed or not. Repeated dims and float_data fields are concatenated and the last of
//     several name, data_type or raw_data fields wins, as protobuf parsers do.
//   - Initializers of any other data_type (int64 shape constants, float16, ...) are ignored,
//     not an error; so are sparse_initializer (GraphProto field 15), Constant nodes,
//     subgraphs in node attributes, functions and training_info.
//
// What is refused, with an error naming the file and the problem: a file larger than
// MaxFileSize, a truncated varint or field, a length beyond its message, a group, a float
// initializer without a name or whose value count is not the product of its dims, a
// negative dim or a product of dims that overflows int64, the same name on two
// initializers, both raw_data and float_data on one initializer, and float initializers
// stored outside the file (external data) or in segments, which this package does not
// support.
//
// Memory is bounded by the file: ReadInitializers checks the size before reading, and every
// slice the parser allocates is sized by bytes present in the file (four bytes of raw_data
// or five of unpacked float_data per float32, at least one byte per dim), never by a count
// the file merely claims.
//
// TODO(#3): external data (data_location EXTERNAL, for models over 2 GB) is not supported;
// the MedLAM and SAM exports of this project keep their weights inside the .onnx file.
package onnxpb

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// MaxFileSize is the size, in bytes, of the largest file ReadInitializers reads (4 GiB);
// larger files are refused before any byte is read. ONNX files without external data are
// limited to 2 GiB by protobuf anyway.
const MaxFileSize int64 = 4 << 30

// Field numbers of the ONNX messages this package reads (onnx/onnx.proto).
const (
	modelGraph        = 7  // ModelProto.graph: GraphProto
	graphInitializer  = 5  // GraphProto.initializer: repeated TensorProto
	tensorDims        = 1  // TensorProto.dims: repeated int64
	tensorDataType    = 2  // TensorProto.data_type: int32 (TensorProto.DataType)
	tensorSegment     = 3  // TensorProto.segment: Segment
	tensorFloatData   = 4  // TensorProto.float_data: repeated float
	tensorName        = 8  // TensorProto.name: string
	tensorRawData     = 9  // TensorProto.raw_data: bytes
	tensorExternal    = 13 // TensorProto.external_data: repeated StringStringEntryProto
	tensorLocation    = 14 // TensorProto.data_location: DataLocation
	dataTypeFloat     = 1  // TensorProto.DataType FLOAT
	dataLocationLocal = 0  // TensorProto.DataLocation DEFAULT
)

// Tensor is one initializer: its dims and its float32 values (C order).
type Tensor struct {
	Name string
	Dims []int64
	Data []float32
}

// ReadInitializers reads every float32 initializer of the model's main graph from the ONNX
// file at path, keyed by name; see the package comment for what is read, what is ignored
// and what is refused. A file larger than MaxFileSize, or anything but a regular file, is
// refused before it is read.
func ReadInitializers(path string) (map[string]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnxpb: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onnxpb: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("onnxpb: %s: not a regular file", path)
	}
	size := st.Size()
	if size > MaxFileSize {
		return nil, fmt.Errorf("onnxpb: %s: file of %d bytes is larger than the %d-byte limit", path, size, MaxFileSize)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("onnxpb: %s: file of %d bytes does not fit in memory on this platform", path, size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("onnxpb: %s: reading %d bytes: %v", path, size, err)
	}
	return ParseInitializers(buf, path)
}

// ParseInitializers is ReadInitializers on the bytes of a model held in memory; name is
// the file name used in errors. The returned tensors share no memory with data.
func ParseInitializers(data []byte, name string) (map[string]Tensor, error) {
	out, err := parseModel(data)
	if err != nil {
		return nil, fmt.Errorf("onnxpb: %s: %w", name, err)
	}
	return out, nil
}

// parseModel walks a ModelProto and collects the float initializers of every graph field
// (protobuf merges repeated occurrences of a message field, so their initializers add up).
func parseModel(data []byte) (map[string]Tensor, error) {
	m := newMessage(data, 0)
	out := map[string]Tensor{}
	seen := map[string]bool{} // names of all initializers, float or not
	count := 0                // initializers seen so far, for error messages
	graphs := 0
	for !m.done() {
		f, err := m.next()
		if err != nil {
			return nil, err
		}
		if f.num != modelGraph {
			continue
		}
		if err := wantWire(f, "ModelProto.graph", wireBytes); err != nil {
			return nil, err
		}
		graphs++
		if err := parseGraph(newMessage(f.data, m.dataOffset(f)), out, seen, &count); err != nil {
			return nil, err
		}
	}
	if graphs == 0 {
		return nil, fmt.Errorf("no graph (ModelProto field %d) in %d bytes: not an ONNX model", modelGraph, len(data))
	}
	return out, nil
}

// parseGraph walks a GraphProto and adds its float initializers to out.
func parseGraph(g *message, out map[string]Tensor, seen map[string]bool, count *int) error {
	for !g.done() {
		f, err := g.next()
		if err != nil {
			return fmt.Errorf("graph: %w", err)
		}
		if f.num != graphInitializer {
			continue
		}
		if err := wantWire(f, "GraphProto.initializer", wireBytes); err != nil {
			return fmt.Errorf("graph: %w", err)
		}
		idx := *count
		*count++
		t, isFloat, err := parseTensor(newMessage(f.data, g.dataOffset(f)))
		if err != nil {
			if t.Name != "" {
				return fmt.Errorf("initializer %d (%q): %w", idx, t.Name, err)
			}
			return fmt.Errorf("initializer %d: %w", idx, err)
		}
		if isFloat && t.Name == "" {
			return fmt.Errorf("initializer %d: float initializer without a name", idx)
		}
		if t.Name != "" {
			if seen[t.Name] {
				return fmt.Errorf("initializer %d (%q): duplicate name", idx, t.Name)
			}
			seen[t.Name] = true
		}
		if isFloat {
			out[t.Name] = t
		}
	}
	return nil
}

// tensorFields is what the first pass over a TensorProto learns: the scalar fields (last
// occurrence wins) and how many dims and float_data values the repeated fields hold.
type tensorFields struct {
	name      string
	dataType  int32
	location  int32
	external  int // external_data entries
	segment   bool
	raw       []byte
	hasRaw    bool
	nDims     int
	nFloats   int
	hasFloats bool
}

// parseTensor decodes a TensorProto. It returns isFloat false, and no error, for a tensor
// of another data type, after checking only its wire format; t.Name is set whenever the
// name was read, also with an error, so that the caller can name the initializer.
func parseTensor(m *message) (t Tensor, isFloat bool, err error) {
	var tf tensorFields
	for !m.done() {
		f, err := m.next()
		if err != nil {
			return Tensor{Name: tf.name}, false, err
		}
		if err := tf.add(f); err != nil {
			return Tensor{Name: tf.name}, false, err
		}
	}
	t.Name = tf.name
	if tf.dataType != dataTypeFloat {
		return t, false, nil
	}
	if tf.external > 0 || tf.location != dataLocationLocal {
		return t, false, fmt.Errorf("weights stored as external data (data_location %d, %d external_data entries), which is not supported: save the model with its weights inside the .onnx file", tf.location, tf.external)
	}
	if tf.segment {
		return t, false, fmt.Errorf("segmented tensor (TensorProto.segment), which is not supported")
	}
	if tf.hasRaw && tf.hasFloats {
		return t, false, fmt.Errorf("both raw_data (%d bytes) and float_data (%d values)", len(tf.raw), tf.nFloats)
	}

	// Second pass: dims and float_data, into slices sized by the first.
	t.Dims = make([]int64, 0, tf.nDims)
	var floats []float32
	if tf.hasFloats {
		floats = make([]float32, 0, tf.nFloats)
	}
	m.pos = 0
	for !m.done() {
		f, err := m.next()
		if err != nil { // cannot happen: the first pass read the same bytes
			return t, false, err
		}
		switch f.num {
		case tensorDims:
			if t.Dims, err = appendDims(t.Dims, f, m); err != nil {
				return t, false, err
			}
		case tensorFloatData:
			floats = appendFloats(floats, f)
		}
	}

	n, err := elements(t.Dims)
	if err != nil {
		return t, false, err
	}
	if tf.hasFloats {
		if int64(len(floats)) != n {
			return t, false, fmt.Errorf("float_data holds %d values, want product(dims %v) = %d", len(floats), t.Dims, n)
		}
		t.Data = floats
		return t, true, nil
	}
	if len(tf.raw)%4 != 0 || int64(len(tf.raw)/4) != n {
		return t, false, fmt.Errorf("raw_data holds %d bytes, want 4 x product(dims %v) = 4 x %d", len(tf.raw), t.Dims, n)
	}
	t.Data = make([]float32, n)
	for i := range t.Data {
		t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(tf.raw[4*i:]))
	}
	return t, true, nil
}

// add records one field of a TensorProto in the first pass, checking its wire type.
func (tf *tensorFields) add(f field) error {
	switch f.num {
	case tensorDims:
		if err := wantWire(f, "dims", wireVarint, wireBytes); err != nil {
			return err
		}
		if f.wire == wireVarint {
			tf.nDims++
			return nil
		}
		n, ok := countVarints(f.data)
		if !ok {
			return fmt.Errorf("packed dims at byte %d end inside a varint", f.off)
		}
		tf.nDims += n
	case tensorDataType:
		if err := wantWire(f, "data_type", wireVarint); err != nil {
			return err
		}
		tf.dataType = int32(f.val) // protobuf truncates int32 varints to 32 bits
	case tensorSegment:
		if err := wantWire(f, "segment", wireBytes); err != nil {
			return err
		}
		tf.segment = true
	case tensorFloatData:
		if err := wantWire(f, "float_data", wire32, wireBytes); err != nil {
			return err
		}
		tf.hasFloats = true
		if f.wire == wire32 {
			tf.nFloats++
			return nil
		}
		if len(f.data)%4 != 0 {
			return fmt.Errorf("packed float_data at byte %d holds %d bytes, not a multiple of 4", f.off, len(f.data))
		}
		tf.nFloats += len(f.data) / 4
	case tensorName:
		if err := wantWire(f, "name", wireBytes); err != nil {
			return err
		}
		tf.name = string(f.data)
	case tensorRawData:
		if err := wantWire(f, "raw_data", wireBytes); err != nil {
			return err
		}
		tf.raw, tf.hasRaw = f.data, true
	case tensorExternal:
		if err := wantWire(f, "external_data", wireBytes); err != nil {
			return err
		}
		tf.external++
	case tensorLocation:
		if err := wantWire(f, "data_location", wireVarint); err != nil {
			return err
		}
		tf.location = int32(f.val)
	}
	return nil
}

// appendDims appends the dims of one dims field f (read from m) to dims.
func appendDims(dims []int64, f field, m *message) ([]int64, error) {
	if f.wire == wireVarint {
		return append(dims, int64(f.val)), nil
	}
	p := newMessage(f.data, m.dataOffset(f))
	for !p.done() {
		v, err := p.varint("packed dims")
		if err != nil {
			return dims, err
		}
		dims = append(dims, int64(v))
	}
	return dims, nil
}

// appendFloats appends the values of one float_data field f to dst.
func appendFloats(dst []float32, f field) []float32 {
	if f.wire == wire32 {
		return append(dst, math.Float32frombits(uint32(f.val)))
	}
	for i := 0; i+4 <= len(f.data); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(f.data[i:])))
	}
	return dst
}

// elements returns the product of dims (1 for a scalar), refusing negative dims and
// products that overflow int64.
func elements(dims []int64) (int64, error) {
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("dims %v: dim %d is negative", dims, i)
		}
	}
	n := int64(1)
	for _, d := range dims {
		if d == 0 {
			return 0, nil
		}
	}
	for _, d := range dims {
		if n > math.MaxInt64/d {
			return 0, fmt.Errorf("dims %v: product overflows int64", dims)
		}
		n *= d
	}
	return n, nil
}
