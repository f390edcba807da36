package kernels

import (
	"fmt"
	"math"
)

// SimilarityScale is one feature scale of MedLAM's multi-scale similarity search (MSS).
type SimilarityScale struct {
	// Size is the edge S of the query feature map in voxels; a multiple of 16.
	Size int
	// Kernel is the edge k of the template kernel in voxels: even, 2 <= k <= Size.
	Kernel int
	// Channels is the number of feature channels C at this scale.
	Channels int
}

// MedLAMScales returns the scales of the reference: feature0, feature1, feature2 of the
// MedLAM decoder (16^3, 32^3, 64^3) with kernels of 2^3, 4^3 and 8^3 voxels.
func MedLAMScales(channels int) []SimilarityScale {
	return []SimilarityScale{
		{Size: 16, Kernel: 2, Channels: channels},
		{Size: 32, Kernel: 4, Channels: channels},
		{Size: 64, Kernel: 8, Channels: channels},
	}
}

// MedLAMPatch is the edge of the fused score map and of the query patch, in voxels.
const MedLAMPatch = 64

// Limits that bound the workspace a SimilaritySearch may allocate.
const (
	maxSimilaritySize     = 256
	maxSimilarityKernel   = 32
	maxSimilarityChannels = 4096
	maxSimilarityPatch    = 512
	maxSimilarityScales   = 8
)

// similarityChunk is how many points a SimilaritySearch correlates at once; it bounds the
// workspace (about 1.7 MB of score maps per point at the MedLAM scales).
const similarityChunk = 8

// l2Eps is the floor of the norm in L2 normalisation, that of torch.nn.functional.normalize.
const l2Eps = 1e-12

// SimilarityMatch is the result of the similarity search for one point.
type SimilarityMatch struct {
	// Index is the position (z, y, x) of the first maximum, in C order, of the fused score
	// map of Patch^3 voxels.
	Index [3]int
	// Offset is Index - Patch/2 + 1 per axis: the reference's displacement in voxels of the
	// patch grid, including its one-voxel bias. The bias offsets the half-voxel shift of the
	// align_corners-false resize from S+1 to Patch samples: for features displaced by d
	// voxels from the template the maximum lands at Patch/2-1+d when d > 0 (Offset d) but at
	// Patch/2+d when d < 0 (Offset d+1), as TestSimilarityKnownAnswer shows; at d = 0 the
	// two candidates tie. The reference behaves the same; this reproduces it.
	Offset [3]int
	// Score is the fused score at Index: the sum over scales of the resized mean cosine
	// similarities. The reference's max_sim adds 1 and the random bias of its freshly built
	// conv layers to this; both shift the whole map and leave Index unchanged.
	Score float32
}

// scaleGeom is the derived geometry and packed kernels of one scale.
type scaleGeom struct {
	SimilarityScale
	pad    int // k/2, the reference's conv padding
	full   int // W = S+k-1, the edge of the full correlation map we accumulate into
	skip   int // pad-1: the reference's output starts at this index of the full map
	rows   int // tile height of the GEMM implementation
	taps   int // k*k taps in one tz slice, padded up to a multiple of rows
	blocks int // taps / rows
	// rowOff[m] is -(ty*W + tx) for tap m = ty*k + tx of a tz slice, 0 for padding taps.
	rowOff []int
	// Trilinear resize of the (S+1)^3 reference output to Patch^3, align_corners false,
	// per output index: the two source indices (already shifted into the full map) and
	// their weights.
	i0, i1 []int
	w0, w1 []float32
	// Workspace, sized for similarityChunk points.
	packedK []float32 // [point][tz][block][C][rows]
	maps    []float32 // [point][W^3]
}

// SimilaritySearch runs MedLAM's multi-scale similarity search (method step 4.3) for a
// batch of points: for each scale it correlates the L2-normalised query feature maps with
// the point's template kernel (the reference's grouped Conv3d with padding k/2, divided by
// k^3), resizes the (S+1)^3 results trilinearly to Patch^3 (align_corners false), sums the
// scales with equal weights and returns the first maximum in C order.
//
// The correlation is computed as a matrix product, kernel taps x channels times channels
// x query voxels (G = K^T F per input row), by a register-tiled kernel (AVX-512 or AVX2/FMA
// assembly on amd64 CPUs that have them, portable Go elsewhere) whose tiles add each tap's
// row of the product straight into its shifted place in the output, so G is never stored.
// The query rows are L2-normalised while they are packed for the tiles. Work is spread
// over Workers() goroutines.
//
// A SimilaritySearch owns its workspace and reuses it, so after the first call of a given
// batch size it allocates no memory proportional to the data. It is not safe for
// concurrent use; distinct values may run concurrently.
type SimilaritySearch struct {
	scales []scaleGeom
	patch  int
	impl   gemmImpl
	units  []simUnit
	slabs  []simSlab
	pool   chan []float32 // row panels, one per running worker
}

// simUnit is one block of k input planes of one scale of one point (of a chunk).
type simUnit struct{ point, scale, z0 int }

// simSlab is one slab of output planes of the fused map of one point, with its maximum.
type simSlab struct {
	point, z0, z1 int
	best          float32
	idx           int
}

// NewSimilaritySearch returns a search over the given scales (their order is the order in
// which the scores are summed) with a fused map of patch^3 voxels. It returns an error
// naming the scale and field that is out of range.
func NewSimilaritySearch(scales []SimilarityScale, patch int) (*SimilaritySearch, error) {
	if len(scales) == 0 || len(scales) > maxSimilarityScales {
		return nil, fmt.Errorf("kernels: similarity search needs 1 to %d scales, got %d",
			maxSimilarityScales, len(scales))
	}
	if patch < 2 || patch > maxSimilarityPatch {
		return nil, fmt.Errorf("kernels: similarity patch %d outside [2, %d]",
			patch, maxSimilarityPatch)
	}
	s := &SimilaritySearch{patch: patch, impl: gemmUse}
	maxPanel := 0
	for i, sc := range scales {
		switch {
		case sc.Size < tileCols || sc.Size > maxSimilaritySize || sc.Size%tileCols != 0:
			return nil, fmt.Errorf("kernels: similarity scale %d: size %d is not a multiple of"+
				" %d in [%d, %d]", i, sc.Size, tileCols, tileCols, maxSimilaritySize)
		case sc.Kernel < 2 || sc.Kernel%2 != 0 || sc.Kernel > sc.Size ||
			sc.Kernel > maxSimilarityKernel:
			return nil, fmt.Errorf("kernels: similarity scale %d: kernel %d is not even in"+
				" [2, min(size %d, %d)]", i, sc.Kernel, sc.Size, maxSimilarityKernel)
		case sc.Channels < 1 || sc.Channels > maxSimilarityChannels:
			return nil, fmt.Errorf("kernels: similarity scale %d: channels %d outside [1, %d]",
				i, sc.Channels, maxSimilarityChannels)
		}
		s.scales = append(s.scales, newScaleGeom(sc, patch, s.impl.rows()))
		maxPanel = max(maxPanel, sc.Channels*max(sc.Size, packRun))
	}
	s.pool = make(chan []float32, Workers())
	for range Workers() {
		s.pool <- make([]float32, maxPanel)
	}
	return s, nil
}

func newScaleGeom(sc SimilarityScale, patch, rows int) scaleGeom {
	k := sc.Kernel
	g := scaleGeom{SimilarityScale: sc, pad: k / 2, full: sc.Size + k - 1, skip: k/2 - 1}
	g.rows = rows
	g.blocks = (k*k + rows - 1) / rows
	g.taps = g.blocks * rows
	g.rowOff = make([]int, g.taps)
	for m := range k * k {
		g.rowOff[m] = -(m/k*g.full + m%k)
	}
	g.i0, g.i1, g.w0, g.w1 = linearTable(sc.Size+1, patch)
	for o := range patch {
		g.i0[o] += g.skip
		g.i1[o] += g.skip
	}
	return g
}

// linearTable returns, for each of out output indices, the two input indices and weights
// of linear resizing from in samples with align_corners false, computed in float32 as
// torch's upsample_trilinear3d does: src = in/out*(o+0.5)-0.5 clamped at 0, i0 = floor,
// i1 = i0+1 except at the last sample, weights 1-l and l with l = src-i0.
func linearTable(in, out int) (i0, i1 []int, w0, w1 []float32) {
	i0, i1 = make([]int, out), make([]int, out)
	w0, w1 = make([]float32, out), make([]float32, out)
	scale := float32(in) / float32(out)
	for o := range out {
		src := max(scale*(float32(o)+0.5)-0.5, 0)
		lo := int(src)
		hi := lo
		if lo < in-1 {
			hi = lo + 1
		}
		l := src - float32(lo)
		i0[o], i1[o], w0[o], w1[o] = lo, hi, 1-l, l
	}
	return i0, i1, w0, w1
}

// Search finds the best match of each point's template kernels in that point's query
// features and writes it to out; len(out) is the number of points P.
//
// features[s] holds scale s's query feature maps as the network returns them, not yet
// normalised: [P][C][S^3] with x fastest (C order of [P][C][z][y][x]). Search L2-normalises
// them over channels on the fly (torch's F.normalize: each voxel's channel vector divided
// by max(norm, 1e-12)) and leaves them unchanged. kernels[s] holds scale s's template
// kernels [P][C][k^3], used as given: build them with AddTemplateKernel. The results are
// the same whatever P and the number of workers. Search retains no slice.
func (s *SimilaritySearch) Search(features, kernels [][]float32, out []SimilarityMatch) error {
	points := len(out)
	if points == 0 {
		return fmt.Errorf("kernels: similarity search over zero points")
	}
	if len(features) != len(s.scales) || len(kernels) != len(s.scales) {
		return fmt.Errorf("kernels: similarity search has %d scales, got %d feature and"+
			" %d kernel slices", len(s.scales), len(features), len(kernels))
	}
	for i, g := range s.scales {
		fv := g.Channels * g.Size * g.Size * g.Size
		kv := g.Channels * g.Kernel * g.Kernel * g.Kernel
		if len(features[i]) != points*fv {
			return fmt.Errorf("kernels: similarity scale %d: features hold %d values, want"+
				" %d (points %d x channels %d x %d^3)", i, len(features[i]), points*fv,
				points, g.Channels, g.Size)
		}
		if len(kernels[i]) != points*kv {
			return fmt.Errorf("kernels: similarity scale %d: kernels hold %d values, want"+
				" %d (points %d x channels %d x %d^3)", i, len(kernels[i]), points*kv,
				points, g.Channels, g.Kernel)
		}
	}
	for p0 := 0; p0 < points; p0 += similarityChunk {
		p1 := min(p0+similarityChunk, points)
		if err := s.searchChunk(features, kernels, p0, p1, out[p0:p1]); err != nil {
			return err
		}
	}
	return nil
}

// searchChunk handles points [p0, p1), at most similarityChunk of them.
func (s *SimilaritySearch) searchChunk(features, kernels [][]float32, p0, p1 int,
	out []SimilarityMatch) error {
	n := p1 - p0
	for si := range s.scales {
		g := &s.scales[si]
		w3 := g.full * g.full * g.full
		if cap(g.maps) < n*w3 {
			g.maps = make([]float32, similarityChunk*w3)
			g.packedK = make([]float32, similarityChunk*g.Kernel*g.taps*g.Channels)
		}
		g.maps = g.maps[:n*w3]
		clear(g.maps)
		kv := g.Channels * g.Kernel * g.Kernel * g.Kernel
		for p := range n {
			g.packKernel(kernels[si][(p0+p)*kv:(p0+p+1)*kv], p)
		}
	}
	// Input planes are taken k at a time. Block b adds into output planes of the full
	// map [b*k, b*k+2k-1), so blocks of the same parity never touch the same plane: each
	// parity is one parallel phase, and the order of the sums does not depend on the
	// schedule.
	// TODO(#3): one point gives only S/(2k) = 4 units per phase at each scale, enough for
	// these 2-core machines but not for more cores; split the blocks along y too there.
	for phase := range 2 {
		s.units = s.units[:0]
		// The finest (costliest) scales go first so that the tail of a phase is short.
		for si := len(s.scales) - 1; si >= 0; si-- {
			g := &s.scales[si]
			for p := range n {
				for z0 := phase * g.Kernel; z0 < g.Size; z0 += 2 * g.Kernel {
					s.units = append(s.units, simUnit{point: p, scale: si, z0: z0})
				}
			}
		}
		ParallelFor(len(s.units), 1, func(lo, hi int) {
			panel := <-s.pool
			for _, u := range s.units[lo:hi] {
				s.correlate(u, features[u.scale], p0, panel)
			}
			s.pool <- panel
		})
	}
	return s.fuse(p0, n, out)
}

// packKernel packs point p's kernel [C][k^3] as [tz][block][C][rows], padding taps
// with zeros.
func (g *scaleGeom) packKernel(kern []float32, p int) {
	k, c := g.Kernel, g.Channels
	dst := g.packedK[p*k*g.taps*c : (p+1)*k*g.taps*c]
	clear(dst)
	k3 := k * k * k
	for tz := range k {
		for m := range k * k {
			b, i := m/g.rows, m%g.rows
			base := (tz*g.blocks+b)*c*g.rows + i
			for ch := range c {
				dst[base+ch*g.rows] = kern[ch*k3+tz*k*k+m]
			}
		}
	}
}

// correlate adds the contributions of input planes [z0, z0+k) of one point and scale to
// that point's full correlation map. panel is a worker's scratch of at least
// C*max(S, packRun) values.
//
// TODO(#3): an 8 x 32 AVX-512 tile (10 loads per 16 FMAs instead of 17 for 16 x 16) is
// expected to speed the product up by about 1.3x; it needs 32-wide packing where S%32 == 0.
func (s *SimilaritySearch) correlate(u simUnit, feats []float32, p0 int, panel []float32) {
	g := &s.scales[u.scale]
	S, k, c, W := g.Size, g.Kernel, g.Channels, g.full
	s3 := S * S * S
	feat := feats[(p0+u.point)*c*s3 : (p0+u.point+1)*c*s3]
	fullMap := g.maps[u.point*W*W*W : (u.point+1)*W*W*W]
	kern := g.packedK[u.point*k*g.taps*c : (u.point+1)*k*g.taps*c]
	var offsBuf [maxTileRows]int
	offs := offsBuf[:g.rows]
	panelA := c * g.rows
	for z := u.z0; z < min(u.z0+k, S); z++ {
		// Rows are packed a run at a time: packRun contiguous values per channel read
		// better than one row from each of c pages.
		rows := max(packRun/S, 1)
		for y := range S {
			if y%rows == 0 {
				packRow(s.impl, panel, feat, c, s3, (z*S+y)*S, min(rows, S-y)*S)
			}
			row := panel[y%rows*S*c : (y%rows+1)*S*c]
			for tz := range k {
				// Output plane z-tz+k-1 of the full map; only those the reference keeps.
				oz := z - tz + k - 1
				if oz < g.skip || oz > g.skip+S {
					continue
				}
				rowBase := (oz*W+y+k-1)*W + k - 1
				for xb := 0; xb < S; xb += tileCols {
					b := row[xb*c : (xb+tileCols)*c]
					base := rowBase + xb
					for blk := range g.blocks {
						for i := range offs {
							offs[i] = base + g.rowOff[blk*g.rows+i]
						}
						a := kern[(tz*g.blocks+blk)*panelA : (tz*g.blocks+blk+1)*panelA]
						gemmTile(s.impl, c, a, b, fullMap, offs)
					}
				}
			}
		}
	}
}

// packRun is how many consecutive voxels of each channel packRow reads at once, at most.
const packRun = 256

// packRow packs n consecutive voxels (whole x-rows; n a multiple of tileCols, at most
// max(packRun, maxSimilaritySize)) of c channel maps, starting at index row of each
// channel's map of s3 values, as [n/tileCols][c][tileCols], L2-normalised over channels.
func packRow(impl gemmImpl, panel, feat []float32, c, s3, row, n int) {
	var inv [max(packRun, maxSimilaritySize)]float32
	norms := inv[:n]
	if n%tileCols != 0 || len(panel) < n*c || row+(c-1)*s3+n > len(feat) {
		panic(fmt.Sprintf("kernels: internal error: pack %d voxels at %d", n, row))
	}
	asm := impl >= implAVX2
	for ch := range c {
		src := feat[ch*s3+row : ch*s3+row+n]
		if asm {
			squareAddAVX2(&norms[0], &src[0], n)
			continue
		}
		for x, v := range src {
			norms[x] += v * v
		}
	}
	for x, ss := range norms {
		norms[x] = float32(1 / math.Max(math.Sqrt(float64(ss)), l2Eps))
	}
	for ch := range c {
		src := feat[ch*s3+row : ch*s3+row+n]
		if asm {
			scatterScaleAVX2(&panel[ch*tileCols], c*tileCols, &src[0], &norms[0], n/tileCols)
			continue
		}
		for xb := 0; xb < n; xb += tileCols {
			d := (*[tileCols]float32)(panel[xb*c+ch*tileCols:])
			sv := (*[tileCols]float32)(src[xb:])
			nv := (*[tileCols]float32)(norms[xb:])
			for j := range tileCols {
				d[j] = sv[j] * nv[j]
			}
		}
	}
}

// fuse resizes each scale's map of each of n points to patch^3, sums them and finds the
// first maximum; the map of scale s is read from its full correlation map, divided by k^3.
func (s *SimilaritySearch) fuse(p0, n int, out []SimilarityMatch) error {
	const slabsPerPoint = 8
	P := s.patch
	s.slabs = s.slabs[:0]
	step := (P + slabsPerPoint - 1) / slabsPerPoint
	for p := range n {
		for z0 := 0; z0 < P; z0 += step {
			s.slabs = append(s.slabs, simSlab{point: p, z0: z0, z1: min(z0+step, P)})
		}
	}
	ParallelFor(len(s.slabs), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s.fuseSlab(&s.slabs[i])
		}
	})
	var found [similarityChunk]bool
	for _, sl := range s.slabs {
		m := &out[sl.point]
		// Slabs are in C order, so a later slab wins only with a strictly larger score.
		if sl.idx >= 0 && (!found[sl.point] || sl.best > m.Score) {
			found[sl.point] = true
			z, r := sl.idx/(P*P), sl.idx%(P*P)
			m.Index = [3]int{z, r / P, r % P}
			m.Score = sl.best
		}
	}
	for p := range n {
		if !found[p] {
			return fmt.Errorf("kernels: similarity point %d: the score map has no maximum"+
				" (NaN in its features or kernels)", p0+p)
		}
		for a := range 3 {
			out[p].Offset[a] = out[p].Index[a] - P/2 + 1
		}
	}
	return nil
}

// fuseSlab computes output planes [z0, z1) of one point's fused map and their first
// maximum.
func (s *SimilaritySearch) fuseSlab(sl *simSlab) {
	P := s.patch
	var row [maxSimilarityPatch]float32
	sum := row[:P]
	sl.best, sl.idx = float32(math.Inf(-1)), -1
	for z := sl.z0; z < sl.z1; z++ {
		for y := range P {
			clear(sum)
			for si := range s.scales {
				g := &s.scales[si]
				W := g.full
				w3 := W * W * W
				m := g.maps[sl.point*w3 : (sl.point+1)*w3]
				inv := 1 / float32(g.Kernel*g.Kernel*g.Kernel)
				wz0, wz1 := g.w0[z]*inv, g.w1[z]*inv
				wy0, wy1 := g.w0[y], g.w1[y]
				r00 := m[(g.i0[z]*W+g.i0[y])*W : (g.i0[z]*W+g.i0[y]+1)*W]
				r01 := m[(g.i0[z]*W+g.i1[y])*W : (g.i0[z]*W+g.i1[y]+1)*W]
				r10 := m[(g.i1[z]*W+g.i0[y])*W : (g.i1[z]*W+g.i0[y]+1)*W]
				r11 := m[(g.i1[z]*W+g.i1[y])*W : (g.i1[z]*W+g.i1[y]+1)*W]
				for x := range P {
					x0, x1 := g.i0[x], g.i1[x]
					wx0, wx1 := g.w0[x], g.w1[x]
					v := wz0*(wy0*(wx0*r00[x0]+wx1*r00[x1])+wy1*(wx0*r01[x0]+wx1*r01[x1])) +
						wz1*(wy0*(wx0*r10[x0]+wx1*r10[x1])+wy1*(wx0*r11[x0]+wx1*r11[x1]))
					sum[x] += v
				}
			}
			for x, v := range sum {
				if v > sl.best {
					sl.best, sl.idx = v, (z*P+y)*P+x
				}
			}
		}
	}
}
