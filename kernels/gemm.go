package kernels

import "fmt"

// The register tile of the similarity GEMM: tileRows kernel taps (broadcast operand) by
// tileCols query voxels along x (vector operand). 6 x 16 keeps 12 AVX2 accumulators busy,
// enough to cover the FMA latency on two ports, and leaves three registers for operands.
const (
	tileRows = 6
	tileCols = 16
)

// gemmTile adds one register tile of a matrix product into dst, each tile row at its own
// offset:
//
//	dst[offs[i]+j] += sum over l < kc of a[l*tileRows+i] * b[l*tileCols+j]
//
// for i < tileRows and j < tileCols. a is a packed [kc][tileRows] panel, b a packed
// [kc][tileCols] panel. The rows' own offsets let the caller scatter each kernel tap to its
// shifted place in the correlation output without materialising the product. It checks
// every index before it hands the slices to the assembly version, which checks none; a
// failed check is a bug in this package, so it panics rather than corrupt memory.
func gemmTile(kc int, a, b, dst []float32, offs *[tileRows]int) {
	if kc <= 0 || len(a) < kc*tileRows || len(b) < kc*tileCols {
		panic(fmt.Sprintf("kernels: internal error: gemm tile kc %d with panels %d, %d",
			kc, len(a), len(b)))
	}
	for _, o := range offs {
		if o < 0 || o+tileCols > len(dst) {
			panic(fmt.Sprintf("kernels: internal error: gemm tile offset %d outside %d",
				o, len(dst)))
		}
	}
	if useAVX2FMA {
		gemmTileAVX2(kc, &a[0], &b[0], &dst[0], offs)
		return
	}
	gemmTileGeneric(kc, a, b, dst, offs)
}

// gemmTileGeneric is the portable gemmTile: the same sums in the same order per output
// (l ascending, accumulated in float32, added to dst at the end), so it and the assembly
// differ only by FMA rounding.
func gemmTileGeneric(kc int, a, b, dst []float32, offs *[tileRows]int) {
	var acc [tileRows][tileCols]float32
	a = a[:kc*tileRows]
	b = b[:kc*tileCols]
	for l := 0; l < kc; l++ {
		bp := (*[tileCols]float32)(b[l*tileCols:])
		ap := (*[tileRows]float32)(a[l*tileRows:])
		for i := range tileRows {
			ai := ap[i]
			r := &acc[i]
			for j := range tileCols {
				r[j] += ai * bp[j]
			}
		}
	}
	for i := range tileRows {
		d := (*[tileCols]float32)(dst[offs[i]:])
		for j := range tileCols {
			d[j] += acc[i][j]
		}
	}
}
