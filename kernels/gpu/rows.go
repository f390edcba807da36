//go:build cuda

package gpu

/*
#include "rows.cuh"
*/
import "C"

// GatherRows enqueues the copy of n rows of rowBytes bytes (a multiple of 4) from src into
// dst: dst row r is src row idx[r], idx being a device buffer of n int32 indices in
// [0, src rows). One launch replaces n device copies (and n native calls).
func (s *Stream) GatherRows(dst, src *Buffer, rowBytes int, idx *Buffer, n int) error {
	if rowBytes < 4 || rowBytes%4 != 0 || n < 1 || n > 65535 || n*rowBytes > dst.bytes ||
		src.bytes < rowBytes || 4*n > idx.bytes {
		return invalid("gather rows", "%d rows of %d bytes into %d bytes from %d bytes with "+
			"%d bytes of indices", n, rowBytes, dst.bytes, src.bytes, idx.bytes)
	}
	return s.enqueue("gather rows", func(in *C.mlk_copy, nin C.int, out *C.mlk_copy,
		nout C.int, st *C.mlk_status) C.int {
		return C.mlk_gather_rows(s.d.dev(), s.s, dst.ptr, src.ptr, C.size_t(rowBytes),
			C.int(src.bytes/rowBytes), idx.ptr, C.int(n), st)
	})
}
