//go:build cuda

package gpu

/*
#cgo CFLAGS: -I${SRCDIR}/../cuda
#cgo LDFLAGS: -L${SRCDIR}/../../build/out/cuda -lmedlsam_kernels
#cgo LDFLAGS: -lcudart_static -lstdc++ -ldl -lrt -lpthread -lm
#include <stdlib.h>
#include "runtime.cuh"
#include "resample.cuh"
#include "intensity.cuh"
#include "similarity.cuh"
#include "sampre.cuh"
#include "maskpost.cuh"
*/
import "C"

// check turns a native status into a Go error: nil for MLK_OK, else an *Error naming op.
// It is the one place where native statuses become errors.
func check(op string, rc C.int, st *C.mlk_status) error {
	if rc == C.MLK_OK {
		return nil
	}
	return &Error{Op: op, Code: int(rc), CUDA: int(st.cuda), Message: C.GoString(&st.msg[0])}
}

// call runs one native entry, giving it a fresh status, and converts the result.
func call(op string, f func(st *C.mlk_status) C.int) error {
	var st C.mlk_status
	return check(op, f(&st), &st)
}

// nativeCodes returns the native status codes in the order codeOK..codeCUDA, for the test
// that keeps the Go mirror in step.
func nativeCodes() []int {
	return []int{C.MLK_OK, C.MLK_EINVAL, C.MLK_ENOMEM, C.MLK_ENODEV, C.MLK_ECUDA}
}
