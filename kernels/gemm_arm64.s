#include "textflag.h"

// One step of one row: load a[row] into all four lanes of V28 (advancing the A pointer),
// multiply by the 16 B values of the step (V24-V27) and accumulate into that row's four
// registers.
#define ROW(a0, a1, a2, a3) \
	VLD1R.P 4(R1), [V28.S4] \
	VFMLA   V24.S4, V28.S4, a0.S4 \
	VFMLA   V25.S4, V28.S4, a1.S4 \
	VFMLA   V26.S4, V28.S4, a2.S4 \
	VFMLA   V27.S4, V28.S4, a3.S4

// Add one row's accumulators into dst at that row's own offset: dst += acc * 1 (V29 holds
// ones; there is no vector FADD in Go's assembler, and x*1 + y rounds as x + y).
#define STORE(idx, a0, a1, a2, a3) \
	MOVD  (idx*8)(R4), R6 \
	ADD   R6<<2, R3, R6 \
	VLD1  (R6), [V24.S4, V25.S4, V26.S4, V27.S4] \
	VFMLA a0.S4, V29.S4, V24.S4 \
	VFMLA a1.S4, V29.S4, V25.S4 \
	VFMLA a2.S4, V29.S4, V26.S4 \
	VFMLA a3.S4, V29.S4, V27.S4 \
	VST1  [V24.S4, V25.S4, V26.S4, V27.S4], (R6)

// func gemmTileNEON(kc int, a, b, dst *float32, offs *int)
//
// Register use: V0-V23 the 6 x 16 accumulators (row i in V4i-V4i+3), V24-V27 the 16 B
// values of one step, V28 the broadcast A value, V29 ones for the final additions.
TEXT ·gemmTileNEON(SB), NOSPLIT, $0-40
	MOVD kc+0(FP), R0
	MOVD a+8(FP), R1
	MOVD b+16(FP), R2
	MOVD dst+24(FP), R3
	MOVD offs+32(FP), R4

	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16

	CMP $0, R0
	BLE done

loop:
	VLD1.P 64(R2), [V24.S4, V25.S4, V26.S4, V27.S4]
	ROW(V0, V1, V2, V3)
	ROW(V4, V5, V6, V7)
	ROW(V8, V9, V10, V11)
	ROW(V12, V13, V14, V15)
	ROW(V16, V17, V18, V19)
	ROW(V20, V21, V22, V23)
	SUBS $1, R0, R0
	BNE  loop

	FMOVS $1.0, F29
	VDUP  V29.S[0], V29.S4
	STORE(0, V0, V1, V2, V3)
	STORE(1, V4, V5, V6, V7)
	STORE(2, V8, V9, V10, V11)
	STORE(3, V12, V13, V14, V15)
	STORE(4, V16, V17, V18, V19)
	STORE(5, V20, V21, V22, V23)

done:
	RET
