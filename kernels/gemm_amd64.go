package kernels

// archGemmImpls are the assembly tiles of amd64, slowest first.
var archGemmImpls = []gemmImpl{implAVX2, implAVX512}

// gemmTileNEON exists only so that gemmTile compiles everywhere; it is never called here.
func gemmTileNEON(kc int, a, b, dst *float32, offs *int) {
	panic("kernels: internal error: no NEON tile on amd64")
}

// bestGemmImpl returns the fastest tile the CPU and OS support.
func bestGemmImpl() gemmImpl {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return implGeneric
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return implGeneric
	}
	xcr0, _ := xgetbv()
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		avx2    = 1 << 5
		avx512f = 1 << 16
	)
	// XCR0 bits 1, 2: the OS saves XMM and YMM; bits 5-7: the opmask and all of ZMM.
	if xcr0&6 != 6 || ebx7&avx2 == 0 {
		return implGeneric
	}
	if xcr0&0xe6 == 0xe6 && ebx7&avx512f != 0 {
		return implAVX512
	}
	return implAVX2
}

// cpuid executes CPUID with the given leaf (EAX) and subleaf (ECX).
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv returns XCR0; call it only when CPUID reports OSXSAVE.
func xgetbv() (eax, edx uint32)

// gemmTileAVX2 is gemmTile for 6 rows in AVX2/FMA assembly, without bounds checks; kc >= 1
// and offs points at 6 offsets.
//
//go:noescape
func gemmTileAVX2(kc int, a, b, dst *float32, offs *int)

// gemmTileAVX512 is gemmTile for 16 rows in AVX-512F assembly, without bounds checks;
// kc >= 1 and offs points at 16 offsets.
//
//go:noescape
func gemmTileAVX512(kc int, a, b, dst *float32, offs *int)

// squareAddAVX2 adds src[i]^2 to dst[i] for i < n, n a multiple of 16; no bounds checks.
//
//go:noescape
func squareAddAVX2(dst, src *float32, n int)

// scatterScaleAVX2 writes dst[b*stride+j] = src[16b+j]*scale[16b+j] for b < blocks,
// j < 16; no bounds checks.
//
//go:noescape
func scatterScaleAVX2(dst *float32, stride int, src, scale *float32, blocks int)
