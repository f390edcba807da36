package kernels

// useAVX2FMA selects the assembly tile. Tests switch it off to check the portable one.
var useAVX2FMA = detectAVX2FMA()

// detectAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves the YMM state.
func detectAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	// XCR0 bits 1 and 2: the OS saves the XMM and YMM registers.
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2 = 1 << 5
	return ebx7&avx2 != 0
}

// cpuid executes CPUID with the given leaf (EAX) and subleaf (ECX).
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv returns XCR0; call it only when CPUID reports OSXSAVE.
func xgetbv() (eax, edx uint32)

// gemmTileAVX2 is gemmTile in AVX2/FMA assembly, without bounds checks; kc must be >= 1.
//
//go:noescape
func gemmTileAVX2(kc int, a, b, dst *float32, offs *[tileRows]int)
