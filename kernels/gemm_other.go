//go:build !amd64

package kernels

// bestGemmImpl is always the portable tile off amd64.
func bestGemmImpl() gemmImpl { return implGeneric }

// gemmTileAVX2 exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileAVX2(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no assembly tile on this architecture")
}

// gemmTileAVX512 exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileAVX512(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no assembly tile on this architecture")
}
