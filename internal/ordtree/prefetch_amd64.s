#include "textflag.h"

// func prefetchLines(a uintptr, n int)
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVQ a+0(FP), AX
	MOVQ n+8(FP), CX
	TESTQ CX, CX
	JLE done
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JNZ loop
done:
	RET
