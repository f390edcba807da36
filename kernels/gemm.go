package kernels

import "fmt"

// tileCols is the width of every register tile of the similarity GEMM: 16 query voxels
// along x (the vector operand), so a tile never straddles a row of a map whose edge is a
// multiple of 16.
const tileCols = 16

// maxTileRows bounds the number of kernel taps (the broadcast operand) of a tile.
const maxTileRows = 16

// gemmImpl names an implementation of gemmTile.
type gemmImpl int

const (
	// implGeneric is portable Go, tiles of 6 rows.
	implGeneric gemmImpl = iota
	// implNEON is arm64 Advanced SIMD assembly, tiles of 6 x 16: 24 accumulators of four
	// lanes, four for the B values and one for the broadcast A value, of the 32 registers.
	implNEON
	// implAVX2 is AVX2/FMA assembly, tiles of 6 x 16: 12 YMM accumulators, enough to cover
	// the FMA latency on two ports, and three registers for operands.
	implAVX2
	// implAVX512 is AVX-512F assembly, tiles of 16 x 16: 16 ZMM accumulators fed by one
	// vector load and 16 embedded-broadcast FMAs per step.
	implAVX512
)

// String returns the name used in test and benchmark names.
func (g gemmImpl) String() string {
	switch g {
	case implAVX2:
		return "avx2"
	case implAVX512:
		return "avx512"
	case implNEON:
		return "neon"
	}
	return "generic"
}

// rows returns the tile height of the implementation.
func (g gemmImpl) rows() int {
	if g == implAVX512 {
		return 16
	}
	return 6
}

// gemmUse is the implementation that new SimilaritySearch values use: the best the CPU has.
// Tests and benchmarks lower it to check the others; available lists what may be chosen.
var gemmUse = bestGemmImpl()

// gemmAvailable returns the implementations this CPU can run, best last: the portable one
// and those of the architecture's assembly (archGemmImpls, slowest first) up to the best.
func gemmAvailable() []gemmImpl {
	impls := []gemmImpl{implGeneric}
	for _, g := range archGemmImpls {
		if g <= bestGemmImpl() {
			impls = append(impls, g)
		}
	}
	return impls
}

// gemmTile adds one register tile of a matrix product into dst, each tile row at its own
// offset:
//
//	dst[offs[i]+j] += sum over l < kc of a[l*rows+i] * b[l*tileCols+j]
//
// for i < rows = len(offs) and j < tileCols. a is a packed [kc][rows] panel, b a packed
// [kc][tileCols] panel. The rows' own offsets let the caller scatter each kernel tap to its
// shifted place in the correlation output without materialising the product. impl picks
// the code; a tile height it does not handle falls back to the portable code. gemmTile
// checks every index before it hands the slices to assembly, which checks none; a failed
// check is a bug in this package, so it panics rather than corrupt memory.
func gemmTile(impl gemmImpl, kc int, a, b, dst []float32, offs []int) {
	rows := len(offs)
	if kc <= 0 || rows < 1 || rows > maxTileRows || len(a) < kc*rows || len(b) < kc*tileCols {
		panic(fmt.Sprintf("kernels: internal error: gemm tile kc %d rows %d with panels %d, %d",
			kc, rows, len(a), len(b)))
	}
	for _, o := range offs {
		if o < 0 || o+tileCols > len(dst) {
			panic(fmt.Sprintf("kernels: internal error: gemm tile offset %d outside %d",
				o, len(dst)))
		}
	}
	switch {
	case impl == implAVX512 && rows == 16:
		gemmTileAVX512(kc, &a[0], &b[0], &dst[0], &offs[0])
	case impl >= implAVX2 && rows == 6:
		gemmTileAVX2(kc, &a[0], &b[0], &dst[0], &offs[0])
	case impl == implNEON && rows == 6:
		gemmTileNEON(kc, &a[0], &b[0], &dst[0], &offs[0])
	default:
		gemmTileGeneric(kc, a, b, dst, offs)
	}
}

// gemmTileGeneric is the portable gemmTile: the same sums in the same order per output
// (l ascending, accumulated in float32, added to dst at the end), so it and the assembly
// differ only by FMA rounding.
//
// It runs at about 1 GMAC/s per core (scalar Go), some 40x below the AVX assembly; only
// amd64 machines without AVX2, and architectures other than amd64 and arm64, depend on it.
func gemmTileGeneric(kc int, a, b, dst []float32, offs []int) {
	var acc [maxTileRows][tileCols]float32
	rows := len(offs)
	a = a[:kc*rows]
	b = b[:kc*tileCols]
	for l := 0; l < kc; l++ {
		bp := (*[tileCols]float32)(b[l*tileCols:])
		for i, ai := range a[l*rows : (l+1)*rows] {
			r := &acc[i]
			for j := range tileCols {
				r[j] += ai * bp[j]
			}
		}
	}
	for i, o := range offs {
		d := (*[tileCols]float32)(dst[o:])
		for j := range tileCols {
			d[j] += acc[i][j]
		}
	}
}
