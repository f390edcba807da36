// Package native runs the MedLAM network of the model contract on the CPU without ONNX
// Runtime: the weights come from the same .onnx file (engine/onnxpb), the arithmetic from
// kernels/cpunet (Winograd convolutions on channels-last tensors). It exists for speed: the
// network's 3x3x3 convolutions need 6x fewer multiply-adds in Winograd form than in the
// direct form ONNX Runtime and torch use on the CPU, and a patch runs about 3x faster than in
// ONNX Runtime. Tests compare it with ONNX Runtime, with torch's golden outputs and with
// float64 torch on the same model files; on patches that are mostly padding it is the closer
// of the two runtimes to float64 torch (TestPaddedPatchTorch). Channel counts are padded to
// multiples of 16, which the published widths (48 to 576) are; the tiny test models (6 to
// 72 channels) therefore run slower here than on ONNX Runtime, which does not matter for
// what they are for.
//
// The network is fixed (models/medlam.py is its definition): every block is Conv3d 3x3x3
// with bias, InstanceNorm without affine parameters, ReLU; 2x max pooling down, trilinear x2
// up (half-pixel); the decoder concatenates the upsampled path before the encoder skip; the
// position head is three linear maps on the flattened bottleneck. Only the width (the
// manifest's config.base_chns) varies. A model file whose weights do not have exactly the
// names and shapes of that network for its width is refused, so a file of another
// architecture cannot run here by accident.
package native

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/onnxpb"
	"github.com/medlsam-fast/medlsam-fast/kernels/cpunet"
)

// Patch is the edge of the network's input patch.
const Patch = 64

// normEps is InstanceNormalization's epsilon in the exported graphs: float32(1e-5).
var normEps = float64(float32(1e-5))

// block is one conv block of the network: inputs of c1 (+ c2 concatenated) channels.
type block struct {
	name         string
	c1, c2, cout int
}

// blocks returns the conv blocks of a network of base width b in the order of the
// checkpoint (models/medlam.py block_table).
func blocks(b int) []block {
	return []block{
		{"conv0_1", 1, 0, 2 * b}, {"conv0_2", 2 * b, 0, 2 * b},
		{"conv1_1", 2 * b, 0, 2 * b}, {"conv1_2", 2 * b, 0, 2 * b},
		{"conv2_1", 2 * b, 0, 2 * b}, {"conv2_2", 2 * b, 0, 4 * b},
		{"conv3_1", 4 * b, 0, 4 * b}, {"conv3_2", 4 * b, 0, 8 * b},
		{"conv4_1", 8 * b, 0, 8 * b}, {"conv4_2", 8 * b, 0, 16 * b},
		{"conv5_1", 16 * b, 8 * b, 8 * b}, {"conv5_2", 8 * b, 0, 8 * b},
		{"conv6_1", 8 * b, 4 * b, 4 * b}, {"conv6_2", 4 * b, 0, 4 * b},
		{"conv7_1", 4 * b, 2 * b, 4 * b}, {"conv7_2", 4 * b, 0, 4 * b},
		{"conv8_1", 4 * b, 2 * b, 4 * b}, {"conv8_2", 4 * b, 0, 4 * b},
	}
}

// encoderBlocks is how many of blocks() the encoder has.
const encoderBlocks = 10

// linear is y = W x + b with W [out][in].
type linear struct {
	in, out int
	w, b    []float32
}

func (l *linear) apply(x []float32) []float32 {
	y := make([]float32, l.out)
	for o := range l.out {
		s := float64(l.b[o])
		for i, v := range l.w[o*l.in : (o+1)*l.in] {
			s += float64(v) * float64(x[i])
		}
		y[o] = float32(s)
	}
	return y
}

// MedLAM is a loaded model: "medlam" (position and the three feature maps) or
// "medlam-encoder" (position only). Run may be called from several goroutines; calls run
// one at a time, each using every core.
type MedLAM struct {
	path     string
	manifest *backend.Manifest
	base     int
	decoder  bool
	convs    []*cpunet.Conv
	head     [3]linear
	inputs   []backend.TensorInfo
	outputs  []backend.TensorInfo

	mu    sync.Mutex
	arena map[string][]float32
}

var _ backend.Model = (*MedLAM)(nil)

// Open loads a MedLAM model file (medlam.onnx or medlam-encoder.onnx) and its manifest. It
// refuses a manifest of another model or contract, a file that does not match its
// manifest's digest, and weights that are not exactly the network's for the manifest's
// width, each with an error naming the file.
func Open(path string) (*MedLAM, error) {
	man, err := backend.LoadManifest(path)
	if err != nil {
		return nil, fmt.Errorf("native: open %s: %w", path, err)
	}
	m := &MedLAM{path: path, manifest: man, arena: map[string][]float32{}}
	switch man.Model {
	case "medlam":
		m.decoder = true
	case "medlam-encoder":
	default:
		return nil, fmt.Errorf("native: %s is a %q model; the native runtime runs only "+
			"medlam and medlam-encoder", path, man.Model)
	}
	if err := m.readConfig(); err != nil {
		return nil, err
	}
	weights, err := onnxpb.ReadInitializers(path)
	if err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	if err := m.loadWeights(weights); err != nil {
		return nil, err
	}
	slog.Debug("native model loaded", "path", path, "model", man.Model, "base_chns", m.base,
		"kernels", cpunet.Best())
	return m, nil
}

// readConfig takes the width from the manifest and checks the manifest's tensors against
// the network of that width.
func (m *MedLAM) readConfig() error {
	man, path := m.manifest, m.path
	bf, ok := man.Config["base_chns"].(float64)
	if !ok || bf != math.Trunc(bf) || bf < 1 || bf > 256 {
		return fmt.Errorf("native: %s: manifest config.base_chns is %v, want an integer "+
			"in [1, 256]", backend.ManifestPath(path), man.Config["base_chns"])
	}
	m.base = int(bf)
	if !slices.Equal(man.PatchSize, []int{Patch, Patch, Patch}) {
		return fmt.Errorf("native: %s: patch size %v, the network takes %d^3",
			backend.ManifestPath(path), man.PatchSize, Patch)
	}
	m.inputs = []backend.TensorInfo{{Name: "patch", Shape: []int64{-1, 1, Patch, Patch, Patch},
		Type: backend.Float32}}
	m.outputs = []backend.TensorInfo{{Name: "position", Shape: []int64{-1, 3},
		Type: backend.Float32}}
	if m.decoder {
		fc := int64(4 * m.base)
		for i, e := range []int64{16, 32, 64} {
			m.outputs = append(m.outputs, backend.TensorInfo{Name: fmt.Sprintf("feature%d", i),
				Shape: []int64{-1, fc, e, e, e}, Type: backend.Float32})
		}
	}
	if err := man.Check(filepath.Base(path), m); err != nil {
		return fmt.Errorf("native: %s is not the MedLAM network of base width %d its "+
			"manifest names: %w", path, m.base, err)
	}
	return nil
}

func (m *MedLAM) loadWeights(ws map[string]onnxpb.Tensor) error {
	// The encoder export wraps the network in a module whose attribute is "net", which
	// prefixes its weights' names; the full export has none.
	prefix := ""
	if _, ok := ws["net.conv0_1.model.conv1_1.Conv.weight"]; ok {
		prefix = "net."
	}
	take := func(name string, dims ...int64) ([]float32, error) {
		name = prefix + name
		t, ok := ws[name]
		if !ok {
			return nil, fmt.Errorf("native: %s has no weight %q (base width %d)", m.path, name,
				m.base)
		}
		if !slices.Equal(t.Dims, dims) {
			return nil, fmt.Errorf("native: %s: weight %q has shape %v, the network of base "+
				"width %d needs %v", m.path, name, t.Dims, m.base, dims)
		}
		delete(ws, name)
		return t.Data, nil
	}
	bl := blocks(m.base)
	if !m.decoder {
		bl = bl[:encoderBlocks]
	}
	for _, b := range bl {
		stem := b.name + ".model.conv1_1.Conv."
		cin := int64(b.c1 + b.c2)
		w, err := take(stem+"weight", int64(b.cout), cin, 3, 3, 3)
		if err != nil {
			return err
		}
		bias, err := take(stem+"bias", int64(b.cout))
		if err != nil {
			return err
		}
		c, err := cpunet.NewConv(w, bias, b.c1, b.c2, b.cout)
		if err != nil {
			return fmt.Errorf("native: %s: %s: %w", m.path, b.name, err)
		}
		m.convs = append(m.convs, c)
	}
	b := m.base
	sizes := [4]int{(Patch / 16) * (Patch / 16) * (Patch / 16) * 16 * b, 8 * b, 4 * b, 3}
	for i := range 3 {
		name := fmt.Sprintf("fc%d", i+1)
		w, err := take(name+".weight", int64(sizes[i+1]), int64(sizes[i]))
		if err != nil {
			return err
		}
		bias, err := take(name+".bias", int64(sizes[i+1]))
		if err != nil {
			return err
		}
		m.head[i] = linear{in: sizes[i], out: sizes[i+1], w: w, b: bias}
	}
	// The unused classification conv is the only other weight an export may carry.
	delete(ws, prefix+"classification.0.weight")
	delete(ws, prefix+"classification.0.bias")
	if len(ws) > 0 {
		extra := make([]string, 0, len(ws))
		for k := range ws {
			extra = append(extra, k)
		}
		slices.Sort(extra)
		return fmt.Errorf("native: %s has weights the MedLAM network does not: %v", m.path,
			extra[:min(len(extra), 5)])
	}
	return nil
}

// Inputs returns the patch input.
func (m *MedLAM) Inputs() []backend.TensorInfo { return m.inputs }

// Outputs returns position, and for a full model feature0..2.
func (m *MedLAM) Outputs() []backend.TensorInfo { return m.outputs }

// Manifest returns the model's manifest.
func (m *MedLAM) Manifest() *backend.Manifest { return m.manifest }

// Close releases the activation buffers; the model must not be used afterwards.
func (m *MedLAM) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.arena = nil
	m.convs = nil
	return nil
}

// Run evaluates the network on patch [B,1,64,64,64] and returns the named outputs. Each
// sample is computed alone (instance normalisation is per sample), so the result for a
// sample does not depend on the batch it came in.
func (m *MedLAM) Run(inputs []backend.Tensor, names []string) ([]backend.Tensor, error) {
	if len(inputs) != 1 || inputs[0].Name != "patch" {
		return nil, fmt.Errorf("native: %s: want the one input \"patch\", got %d inputs",
			m.path, len(inputs))
	}
	in := inputs[0]
	if len(in.Shape) != 5 || in.Shape[0] < 1 || in.Shape[1] != 1 || in.Shape[2] != Patch ||
		in.Shape[3] != Patch || in.Shape[4] != Patch {
		return nil, fmt.Errorf("%w: native: %s: patch has shape %v, want [B,1,%d,%d,%d]",
			backend.ErrShape, m.path, in.Shape, Patch, Patch, Patch)
	}
	const nvox = Patch * Patch * Patch
	if in.Shape[0] != int64(len(in.Data)/nvox) || len(in.Data)%nvox != 0 {
		return nil, fmt.Errorf("%w: native: %s: patch of shape %v has %d values",
			backend.ErrShape, m.path, in.Shape, len(in.Data))
	}
	batch := int(in.Shape[0])
	outs := make([]backend.Tensor, len(names))
	for i, name := range names {
		if slices.Contains(names[:i], name) {
			return nil, fmt.Errorf("native: %s: output %q asked for twice", m.path, name)
		}
		j := slices.IndexFunc(m.outputs, func(t backend.TensorInfo) bool { return t.Name == name })
		if j < 0 {
			return nil, fmt.Errorf("native: %s has no output %q", m.path, name)
		}
		shape := slices.Clone(m.outputs[j].Shape)
		shape[0] = int64(batch)
		outs[i] = backend.Tensor{Name: name, Shape: shape,
			Data: make([]float32, backend.Elements(shape))}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.arena == nil {
		return nil, fmt.Errorf("native: %s: model is closed", m.path)
	}
	for b := range batch {
		dst := map[string][]float32{}
		for i, name := range names {
			per := len(outs[i].Data) / batch
			dst[name] = outs[i].Data[b*per : (b+1)*per]
		}
		m.forward(in.Data[b*nvox:(b+1)*nvox], dst)
	}
	return outs, nil
}

// buf returns the arena's buffer called name with at least n values, reused across calls.
func (m *MedLAM) buf(name string, n int) []float32 {
	b := m.arena[name]
	if cap(b) < n {
		b = make([]float32, n)
		m.arena[name] = b
	}
	return b[:n]
}

// forward runs one sample and writes the outputs named in dst (planar, [C][D][H][W]) into
// the slices dst holds; the decoder runs only when a feature map is asked for.
func (m *MedLAM) forward(patch []float32, dst map[string][]float32) {
	b := m.base
	bl := blocks(b)
	// cbr runs conv block i on a [e]^3 grid: conv, instance norm, ReLU into a fresh buffer.
	cbr := func(i int, out string, e int, src1, src2 []float32) []float32 {
		n := e * e * e
		dst := m.buf(out, n*cpunet.Pad(bl[i].cout))
		st := m.convs[i].Forward(dst, src1, src2, e, e, e)
		cpunet.NormReLU(dst, bl[i].cout, n, st, normEps)
		return dst
	}
	pool := func(out string, src []float32, c, e int) []float32 {
		dst := m.buf(out, e*e*e/8*cpunet.Pad(c))
		cpunet.MaxPool(dst, src, c, e, e, e)
		return dst
	}
	s0 := cbr(1, "s0", 64, cbr(0, "t64", 64, patch, nil), nil)
	s1 := cbr(3, "s1", 32, cbr(2, "t32", 32, pool("p32", s0, 2*b, 64), nil), nil)
	s2 := cbr(5, "s2", 16, cbr(4, "t16", 16, pool("p16", s1, 2*b, 32), nil), nil)
	s3 := cbr(7, "s3", 8, cbr(6, "t8", 8, pool("p8", s2, 4*b, 16), nil), nil)
	bottom := cbr(9, "bottom", 4, cbr(8, "t4", 4, pool("p4", s3, 8*b, 8), nil), nil)

	if pos, ok := dst["position"]; ok {
		flat := make([]float32, 64*16*b)
		cpunet.ToPlanar(flat, bottom, 16*b, 64)
		copy(pos, m.head[2].apply(m.head[1].apply(m.head[0].apply(flat))))
	}
	if len(dst) == 0 || len(dst) == 1 && dst["position"] != nil {
		return
	}
	up := func(out string, src []float32, c, e int) []float32 {
		dst := m.buf(out, 8*e*e*e*cpunet.Pad(c))
		cpunet.Upsample(dst, src, c, e, e, e)
		return dst
	}
	x5 := cbr(11, "x5", 8, cbr(10, "t8", 8, up("u8", bottom, 16*b, 4), s3), nil)
	f0 := cbr(13, "f0", 16, cbr(12, "t16", 16, up("u16", x5, 8*b, 8), s2), nil)
	f1 := cbr(15, "f1", 32, cbr(14, "t32", 32, up("u32", f0, 4*b, 16), s1), nil)
	// conv8_2 writes over the upsampled f1, which conv8_1 has consumed.
	f2 := cbr(17, "u64", 64, cbr(16, "t64", 64, up("u64", f1, 4*b, 32), s0), nil)
	for i, f := range [][]float32{f0, f1, f2} {
		e := 16 << i
		if out, ok := dst[fmt.Sprintf("feature%d", i)]; ok {
			cpunet.ToPlanar(out, f, 4*b, e*e*e)
		}
	}
}
