//go:build !amd64

package kernels

// gemmTileAVX2 exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileAVX2(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no assembly tile on this architecture")
}

// gemmTileAVX512 exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileAVX512(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no assembly tile on this architecture")
}

// squareAddAVX2 exists only so that packRow compiles everywhere; it is never called here.
func squareAddAVX2(dst, src *float32, n int) {
	panic("kernels: internal error: no assembly on this architecture")
}

// scatterScaleAVX2 exists only so that packRow compiles everywhere; it is never called here.
func scatterScaleAVX2(dst *float32, stride int, src, scale *float32, blocks int) {
	panic("kernels: internal error: no assembly on this architecture")
}
