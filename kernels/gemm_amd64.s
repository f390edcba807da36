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

// func gemmTileAVX2(kc int, a, b, dst *float32, offs *[6]int)
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
