//go:build tensorrt

package trt

// The exported log callback lives alone in this file: cgo forbids definitions in the preamble
// of a file with //export, and cgo.go's preamble has some.

// #include <stdint.h>
import "C"

// medlsamTrtLog is the one callback the shim's logger calls (installed by defaultNative),
// on any thread; it hands the record to slog.
//
//export medlsamTrtLog
func medlsamTrtLog(severity C.int32_t, msg *C.char) {
	logNative(int32(severity), C.GoString(msg))
}
