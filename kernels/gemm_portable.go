//go:build !amd64 && !arm64

package kernels

// archGemmImpls is empty: this architecture has no assembly tile.
var archGemmImpls []gemmImpl

// bestGemmImpl is the portable tile here.
func bestGemmImpl() gemmImpl { return implGeneric }

// gemmTileNEON exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileNEON(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no NEON tile on this architecture")
}
