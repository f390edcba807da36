//go:build !cgo || purego

package gunzip

import (
	"io"

	"github.com/klauspost/compress/gzip"
)

// Reader decompresses a gzip stream with klauspost's pure-Go inflate.
type Reader struct{ r *gzip.Reader }

// NewReader returns a Reader of the gzip stream in r.
func NewReader(r io.Reader) (*Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	return &Reader{zr}, nil
}

// Read implements io.Reader.
func (z *Reader) Read(p []byte) (int, error) { return z.r.Read(p) }

// Close releases the decoder; it is idempotent.
func (z *Reader) Close() error { return z.r.Close() }
