//go:build cgo && !purego

package gunzip

/*
#cgo LDFLAGS: -lz
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { gunzip_in_size = 1 << 18 };

typedef struct {
	z_stream s;
	unsigned char in[gunzip_in_size];
} gunzip_state;

static gunzip_state *gunzip_new(int *ret) {
	gunzip_state *g = calloc(1, sizeof(gunzip_state));
	if (g == NULL) {
		*ret = Z_MEM_ERROR;
		return NULL;
	}
	// 15 + 16: a 32 KiB window and a gzip wrapper (header, CRC-32 and length checked).
	*ret = inflateInit2(&g->s, 15 + 16);
	if (*ret != Z_OK) {
		free(g);
		return NULL;
	}
	return g;
}

static void gunzip_free(gunzip_state *g) {
	inflateEnd(&g->s);
	free(g);
}

// gunzip_compact moves the avail unread input bytes to the start of the input buffer and
// returns it; the caller appends new input behind them.
static unsigned char *gunzip_compact(gunzip_state *g, unsigned int avail) {
	if (avail > 0 && g->s.next_in != NULL && g->s.next_in != g->in) {
		memmove(g->in, g->s.next_in, avail);
	}
	g->s.next_in = g->in;
	g->s.avail_in = avail;
	return g->in;
}

static unsigned int gunzip_left(gunzip_state *g) { return g->s.avail_in; }

// gunzip_inflate inflates into out[0:n] and reports how much it wrote. It never keeps out.
static int gunzip_inflate(gunzip_state *g, unsigned int in_avail, unsigned char *out,
                          unsigned int n, unsigned int *produced) {
	g->s.avail_in = in_avail;
	g->s.next_out = out;
	g->s.avail_out = n;
	int ret = inflate(&g->s, Z_NO_FLUSH);
	*produced = n - g->s.avail_out;
	g->s.next_out = NULL;
	g->s.avail_out = 0;
	return ret;
}

static int gunzip_reset(gunzip_state *g) { return inflateReset(&g->s); }

static const char *gunzip_msg(gunzip_state *g) { return g->s.msg; }
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// Reader decompresses a gzip stream with zlib. It is not safe for concurrent use. Close
// releases zlib's state; a Reader that is not closed is released by the garbage collector.
type Reader struct {
	src    io.Reader
	st     *C.gunzip_state
	in     []byte // view of st.in
	avail  int    // unread input bytes at the start of in
	srcEOF bool
	ended  bool // the last member ended and no input follows
	err    error
}

// NewReader returns a Reader of the gzip stream in r. It reads the first bytes of r to
// check the gzip header.
func NewReader(r io.Reader) (*Reader, error) {
	var ret C.int
	st := C.gunzip_new(&ret)
	if st == nil {
		return nil, fmt.Errorf("gunzip: zlib initialisation failed (code %d)", int(ret))
	}
	z := &Reader{src: r, st: st}
	z.in = unsafe.Slice((*byte)(unsafe.Pointer(&st.in[0])), C.gunzip_in_size)
	runtime.SetFinalizer(z, (*Reader).Close)
	for z.avail < 2 && !z.srcEOF {
		if err := z.fill(); err != nil {
			z.Close()
			return nil, err
		}
	}
	if z.avail < 2 || z.in[0] != 0x1f || z.in[1] != 0x8b {
		z.Close()
		return nil, errors.New("gunzip: invalid gzip header")
	}
	return z, nil
}

// fill moves the unread input to the front of the buffer and reads more behind it.
func (z *Reader) fill() error {
	C.gunzip_compact(z.st, C.uint(z.avail))
	for z.avail < len(z.in) && !z.srcEOF {
		n, err := z.src.Read(z.in[z.avail:])
		z.avail += n
		if err == io.EOF {
			z.srcEOF = true
		} else if err != nil {
			return err
		}
		if n > 0 {
			break
		}
	}
	return nil
}

// Read implements io.Reader. A stream that ends inside a member gives io.ErrUnexpectedEOF;
// corrupt data an error carrying zlib's message.
func (z *Reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.st == nil {
		return 0, errors.New("gunzip: read after Close")
	}
	if len(p) == 0 {
		return 0, nil
	}
	total := 0
	for total < len(p) && !z.ended {
		if z.avail == 0 {
			if err := z.fill(); err != nil {
				z.err = err
				break
			}
		}
		chunk := p[total:]
		if len(chunk) > 1<<30 {
			chunk = chunk[:1<<30]
		}
		var produced C.uint
		ret := C.gunzip_inflate(z.st, C.uint(z.avail), (*C.uchar)(unsafe.Pointer(&chunk[0])),
			C.uint(len(chunk)), &produced)
		z.avail = int(C.gunzip_left(z.st))
		total += int(produced)
		switch ret {
		case C.Z_OK:
		case C.Z_STREAM_END:
			// A member ended: another may follow, as gzip(1) allows.
			if z.avail == 0 {
				if err := z.fill(); err != nil {
					z.err = err
					break
				}
			}
			if z.avail == 0 {
				z.ended = true
			} else if C.gunzip_reset(z.st) != C.Z_OK {
				z.err = errors.New("gunzip: zlib reset failed")
			}
		case C.Z_BUF_ERROR:
			// No progress: the input ran out inside a member.
			if z.avail == 0 && z.srcEOF {
				z.err = io.ErrUnexpectedEOF
			}
		default:
			msg := C.GoString(C.gunzip_msg(z.st))
			if msg == "" {
				msg = fmt.Sprintf("zlib error %d", int(ret))
			}
			z.err = errors.New("gunzip: " + msg)
		}
		if z.err != nil {
			break
		}
		if produced == 0 && z.avail == 0 && z.srcEOF && !z.ended {
			z.err = io.ErrUnexpectedEOF
			break
		}
	}
	runtime.KeepAlive(z)
	if total > 0 {
		return total, nil
	}
	if z.err != nil {
		return 0, z.err
	}
	return 0, io.EOF
}

// Close releases zlib's state. It is idempotent.
func (z *Reader) Close() error {
	if z.st != nil {
		C.gunzip_free(z.st)
		z.st = nil
		z.in = nil
		runtime.SetFinalizer(z, nil)
	}
	return nil
}
