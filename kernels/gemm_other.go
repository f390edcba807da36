//go:build !amd64

package kernels

// useAVX2FMA is always false off amd64: gemmTile uses the portable tile.
var useAVX2FMA = false

// gemmTileAVX2 exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileAVX2(kc int, a, b, dst *float32, offs *[tileRows]int) {
	panic("kernels: internal error: no assembly tile on this architecture")
}
