package localize

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/medlsam-fast/medlsam-fast/internal/atomicfile"
)

// Mode selects how many points an organ gets.
type Mode string

// Localisation modes of the method.
const (
	// WPL (whole-patch localisation): six extreme points per organ, one box per organ.
	WPL Mode = "WPL"
	// SPL (sub-patch localisation): the organ is cut along z into chunks of six points each,
	// one box per chunk.
	SPL Mode = "SPL"
)

// version returns the file format version the set needs: 2 for Reference resampling, else
// 1, so that sets older builds can use stay readable to them.
func (ts *TemplateSet) version() int {
	if ts.Resampling.or() == Reference {
		return 2
	}
	return 1
}

// CheckResampling returns an error unless queries prepared with r can use the set: r must
// be the resampling its templates were prepared with ("" meaning Linear on both sides).
func (ts *TemplateSet) CheckResampling(r Resampling) error {
	if have := ts.Resampling.or(); have != r.or() {
		return fmt.Errorf("localize: the template set was made with %s resampling, queries "+
			"are prepared with %s; prepare both alike (--resample %s)", have, r.or(), have)
	}
	return nil
}

// TemplateSetVersion is the newest template-set file format version this build writes and
// reads (it reads every older one too).
const TemplateSetVersion = 2

// templateSetMagic opens every template-set file.
const templateSetMagic = "MEDLAMTS"

// maxHeaderBytes bounds the JSON header read from a file.
const maxHeaderBytes = 64 << 20

// TemplateSet is what the templates contribute to every query: for each template point, the
// position vector averaged over the templates and, per feature scale, the similarity kernel
// (the L2-normalised centre crop of the feature map, summed over the templates). It is
// immutable once built and safe for concurrent reads.
type TemplateSet struct {
	// ModelSHA256 is the digest of the full network that computed the set.
	ModelSHA256 string `json:"model_sha256"`
	// Mode and SliceInterval are the point-extraction settings used.
	Mode          Mode `json:"mode"`
	SliceInterval int  `json:"slice_interval"`
	// Resampling is how the templates were brought to 3 mm: "" for Linear (the only kind
	// of version 1 files), else Reference (version 2 files, which older builds refuse).
	Resampling Resampling `json:"resampling,omitempty"`
	// Templates names the template volumes (image files), in order.
	Templates []string `json:"templates"`
	// Organs lists the organs in point order.
	Organs []OrganPoints `json:"organs"`
	// Channels and Edges give each scale's kernel shape: Channels[s] x Edges[s]^3.
	Channels [3]int `json:"channels"`
	Edges    [3]int `json:"edges"`

	// Positions holds 3 values (z, y, x) per point.
	Positions []float32 `json:"-"`
	// Kernels[s] holds Channels[s]*Edges[s]^3 values per point, C order [C][k][k][k].
	Kernels [3][]float32 `json:"-"`
}

// Organ names one structure of the label maps.
type Organ struct {
	Label int    `json:"label"`
	Name  string `json:"name,omitempty"`
}

func (o Organ) String() string {
	if o.Name == "" {
		return fmt.Sprintf("label %d", o.Label)
	}
	return fmt.Sprintf("%s (label %d)", o.Name, o.Label)
}

// OrganPoints is one organ of a TemplateSet: its points are First .. First+6*Chunks-1, six per
// chunk in the row order zmin, ymin, xmin, zmax, ymax, xmax.
type OrganPoints struct {
	Organ
	First  int `json:"first"`
	Chunks int `json:"chunks"`
	// TemplatePoints[t] are template t's points, (z, y, x) in its resampled 3 mm LAS grid
	// (unpadded), kept for inspection.
	TemplatePoints [][][3]int `json:"template_points"`
}

// NumPoints returns the number of points of all organs.
func (ts *TemplateSet) NumPoints() int {
	n := 0
	for _, o := range ts.Organs {
		n += 6 * o.Chunks
	}
	return n
}

// Validate checks the set's internal consistency: point ranges and array sizes.
func (ts *TemplateSet) Validate() error {
	next := 0
	for _, o := range ts.Organs {
		if o.First != next || o.Chunks < 1 || o.Chunks > maxChunks {
			return fmt.Errorf("localize: template set: organ %v has points %d+%d chunks, want "+
				"first %d and 1 to %d chunks", o.Organ, o.First, o.Chunks, next, maxChunks)
		}
		next += 6 * o.Chunks
	}
	if len(ts.Organs) == 0 {
		return fmt.Errorf("localize: template set has no organ")
	}
	if ts.Mode != WPL && ts.Mode != SPL {
		return fmt.Errorf("localize: template set: mode %q is neither WPL nor SPL", ts.Mode)
	}
	if err := ts.Resampling.Check(); err != nil {
		return fmt.Errorf("localize: template set: %w", err)
	}
	if len(ts.Positions) != 3*next {
		return fmt.Errorf("localize: template set: %d position values for %d points",
			len(ts.Positions), next)
	}
	for s := 0; s < 3; s++ {
		c, k := ts.Channels[s], ts.Edges[s]
		if c <= 0 || c > 1<<16 || k <= 0 || k > Patch {
			return fmt.Errorf("localize: template set: scale %d kernel %d x %d^3 is out of range",
				s, c, k)
		}
		if len(ts.Kernels[s]) != next*c*k*k*k {
			return fmt.Errorf("localize: template set: scale %d has %d kernel values, want %d",
				s, len(ts.Kernels[s]), next*c*k*k*k)
		}
	}
	return nil
}

// templateSetHeader is the JSON header of the file: the set's metadata plus the blob sizes.
type templateSetHeader struct {
	Version int `json:"version"`
	*TemplateSet
	// Blobs lists the float32 arrays that follow the header, in order, by value count.
	Blobs []blob `json:"blobs"`
}

type blob struct {
	Name   string `json:"name"`
	Values int64  `json:"values"`
}

// Save writes the set to path atomically (a temporary file in the same directory, renamed).
//
// Format: the 8 bytes "MEDLAMTS", a little-endian uint32 header length, the JSON header
// (version, model digest, mode, organs, points, shapes, blob list), then the blobs
// "positions", "kernel0", "kernel1", "kernel2" as little-endian float32.
func (ts *TemplateSet) Save(path string) error {
	if err := ts.Validate(); err != nil {
		return err
	}
	h := templateSetHeader{Version: ts.version(), TemplateSet: ts}
	arrays := [][]float32{ts.Positions, ts.Kernels[0], ts.Kernels[1], ts.Kernels[2]}
	for i, name := range []string{"positions", "kernel0", "kernel1", "kernel2"} {
		h.Blobs = append(h.Blobs, blob{Name: name, Values: int64(len(arrays[i]))})
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("localize: template set header: %w", err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		bw.WriteString(templateSetMagic)
		binary.Write(bw, binary.LittleEndian, uint32(len(hdr)))
		bw.Write(hdr)
		buf := make([]byte, 4*4096)
		for _, a := range arrays {
			for len(a) > 0 {
				n := min(len(a), 4096)
				for i, v := range a[:n] {
					binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
				}
				if _, err := bw.Write(buf[:4*n]); err != nil {
					return err
				}
				a = a[n:]
			}
		}
		return bw.Flush()
	})
}

// writeAtomic writes a file through atomicfile, so a reader never sees a partial file.
func writeAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("localize: writing %s: %w", path, err)
	}
	return nil
}

// ErrOtherModel reports a template set computed by a different network than the one given.
var ErrOtherModel = errors.New("localize: template set was computed by another model")

// LoadTemplateSet reads a template set written by Save. When modelSHA256 is not empty, a set
// computed by another model is refused with ErrOtherModel. Sizes are checked against the
// file's length before anything is allocated.
func LoadTemplateSet(path, modelSHA256 string) (*TemplateSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("localize: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localize: %w", err)
	}
	ts, err := readTemplateSet(bufio.NewReader(f), st.Size())
	if err != nil {
		return nil, fmt.Errorf("localize: template set %s: %w", path, err)
	}
	if modelSHA256 != "" && ts.ModelSHA256 != modelSHA256 {
		return nil, fmt.Errorf("%w: %s records model %s, the network is %s; rebuild it "+
			"with --save-templates", ErrOtherModel, path, short(ts.ModelSHA256), short(modelSHA256))
	}
	return ts, nil
}

func short(s string) string { return s[:min(len(s), 12)] }

func readTemplateSet(r io.Reader, size int64) (*TemplateSet, error) {
	var magic [len(templateSetMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != templateSetMagic {
		return nil, fmt.Errorf("not a template-set file (magic %q)", magic[:])
	}
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("header length: %w", err)
	}
	rest := size - int64(len(templateSetMagic)) - 4
	if int64(n) > rest || n > maxHeaderBytes {
		return nil, fmt.Errorf("header length %d exceeds the file", n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	var h templateSetHeader
	h.TemplateSet = &TemplateSet{}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Version < 1 || h.Version > TemplateSetVersion {
		return nil, fmt.Errorf("format version %d, this build reads 1 to %d; rebuild it",
			h.Version, TemplateSetVersion)
	}
	if h.Version != h.TemplateSet.version() {
		return nil, fmt.Errorf("format version %d does not match resampling %q", h.Version,
			h.TemplateSet.Resampling)
	}
	rest -= int64(n)
	want := []string{"positions", "kernel0", "kernel1", "kernel2"}
	if len(h.Blobs) != len(want) {
		return nil, fmt.Errorf("header lists %d blobs, want %d", len(h.Blobs), len(want))
	}
	var total int64
	for i, b := range h.Blobs {
		if b.Name != want[i] || b.Values < 0 || b.Values > rest/4 {
			return nil, fmt.Errorf("blob %d (%q, %d values) does not fit the file", i, b.Name,
				b.Values)
		}
		total += b.Values
	}
	if total*4 != rest {
		return nil, fmt.Errorf("blobs need %d bytes, the file has %d after the header",
			total*4, rest)
	}
	ts := h.TemplateSet
	dst := []*[]float32{&ts.Positions, &ts.Kernels[0], &ts.Kernels[1], &ts.Kernels[2]}
	buf := make([]byte, 4*4096)
	for i, b := range h.Blobs {
		a := make([]float32, b.Values)
		for off := 0; off < len(a); {
			m := min(len(a)-off, 4096)
			if _, err := io.ReadFull(r, buf[:4*m]); err != nil {
				return nil, fmt.Errorf("blob %q: %w", b.Name, err)
			}
			for j := 0; j < m; j++ {
				a[off+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
			off += m
		}
		*dst[i] = a
	}
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	return ts, nil
}
