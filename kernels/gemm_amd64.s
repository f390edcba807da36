#include "textflag.h"

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET

// One step of the inner product: broadcast a[row], multiply by the two B vectors (Y12,
// Y13) and accumulate into that row's pair of registers.
#define ROW(off, lo, hi) \
	VBROADCASTSS off(SI), Y14 \
	VFMADD231PS  Y12, Y14, lo \
	VFMADD231PS  Y13, Y14, hi

// Add the accumulator pair of one row into dst at that row's own offset.
#define STORE(idx, lo, hi) \
	MOVQ    (idx*8)(R8), R9 \
	LEAQ    (DX)(R9*4), R9 \
	VADDPS  (R9), lo, lo \
	VMOVUPS lo, (R9) \
	VADDPS  32(R9), hi, hi \
	VMOVUPS hi, 32(R9)

// func gemmTileAVX2(kc int, a, b, dst *float32, offs *int)
//
// Register use: Y0-Y11 the 6 x 16 accumulators (row i in Y2i, Y2i+1), Y12-Y13 the 16
// B values of one step, Y14 the broadcast A value.
TEXT ·gemmTileAVX2(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ dst+24(FP), DX
	MOVQ offs+32(FP), R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	TESTQ CX, CX
	JLE   done

loop:
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	ROW(0, Y0, Y1)
	ROW(4, Y2, Y3)
	ROW(8, Y4, Y5)
	ROW(12, Y6, Y7)
	ROW(16, Y8, Y9)
	ROW(20, Y10, Y11)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop

	STORE(0, Y0, Y1)
	STORE(1, Y2, Y3)
	STORE(2, Y4, Y5)
	STORE(3, Y6, Y7)
	STORE(4, Y8, Y9)
	STORE(5, Y10, Y11)

done:
	VZEROUPPER
	RET

// One step of one row in AVX-512: multiply the 16 B values (Z16) by a[row], broadcast from
// memory, into that row's accumulator.
#define ROW512(off, acc) \
	VFMADD231PS.BCST off(SI), Z16, acc

// Add one row's accumulator into dst at that row's own offset.
#define STORE512(idx, acc) \
	MOVQ    (idx*8)(R8), R9 \
	LEAQ    (DX)(R9*4), R9 \
	VADDPS  (R9), acc, acc \
	VMOVUPS acc, (R9)

// func gemmTileAVX512(kc int, a, b, dst *float32, offs *int)
//
// Register use: Z0-Z15 the 16 x 16 accumulators (row i in Zi), Z16 the 16 B values of one
// step; the A values are broadcast from memory by the FMAs themselves.
TEXT ·gemmTileAVX512(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ dst+24(FP), DX
	MOVQ offs+32(FP), R8

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

	TESTQ CX, CX
	JLE   done512

loop512:
	VMOVUPS (DI), Z16
	ROW512(0, Z0)
	ROW512(4, Z1)
	ROW512(8, Z2)
	ROW512(12, Z3)
	ROW512(16, Z4)
	ROW512(20, Z5)
	ROW512(24, Z6)
	ROW512(28, Z7)
	ROW512(32, Z8)
	ROW512(36, Z9)
	ROW512(40, Z10)
	ROW512(44, Z11)
	ROW512(48, Z12)
	ROW512(52, Z13)
	ROW512(56, Z14)
	ROW512(60, Z15)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop512

	STORE512(0, Z0)
	STORE512(1, Z1)
	STORE512(2, Z2)
	STORE512(3, Z3)
	STORE512(4, Z4)
	STORE512(5, Z5)
	STORE512(6, Z6)
	STORE512(7, Z7)
	STORE512(8, Z8)
	STORE512(9, Z9)
	STORE512(10, Z10)
	STORE512(11, Z11)
	STORE512(12, Z12)
	STORE512(13, Z13)
	STORE512(14, Z14)
	STORE512(15, Z15)

done512:
	VZEROUPPER
	RET

// func squareAddAVX2(dst, src *float32, n int)
//
// dst[i] += src[i]*src[i] for i < n, n a multiple of 16.
TEXT ·squareAddAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   sqdone

sqloop:
	VMOVUPS     (SI), Y0
	VMOVUPS     32(SI), Y1
	VMOVUPS     (DI), Y2
	VMOVUPS     32(DI), Y3
	VFMADD231PS Y0, Y0, Y2
	VFMADD231PS Y1, Y1, Y3
	VMOVUPS     Y2, (DI)
	VMOVUPS     Y3, 32(DI)
	ADDQ        $64, SI
	ADDQ        $64, DI
	DECQ        CX
	JNZ         sqloop

sqdone:
	VZEROUPPER
	RET

// func scatterScaleAVX2(dst *float32, stride int, src, scale *float32, blocks int)
//
// For b < blocks and j < 16: dst[b*stride+j] = src[16b+j] * scale[16b+j]; stride counts
// float32 values.
TEXT ·scatterScaleAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ stride+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ scale+24(FP), R8
	MOVQ blocks+32(FP), CX
	TESTQ CX, CX
	JLE  scdone

scloop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMULPS  (R8), Y0, Y0
	VMULPS  32(R8), Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, R8
	ADDQ    DX, DI
	DECQ    CX
	JNZ     scloop

scdone:
	VZEROUPPER
	RET
