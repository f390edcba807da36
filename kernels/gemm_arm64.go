package kernels

// archGemmImpls are the assembly tiles of arm64.
var archGemmImpls = []gemmImpl{implNEON}

// bestGemmImpl is the NEON tile: Advanced SIMD is part of every arm64 CPU that Go runs on.
func bestGemmImpl() gemmImpl { return implNEON }

// gemmTileNEON is gemmTile for 6 rows in arm64 Advanced SIMD assembly, without bounds
// checks; kc >= 1 and offs points at 6 offsets.
//
//go:noescape
func gemmTileNEON(kc int, a, b, dst *float32, offs *int)
