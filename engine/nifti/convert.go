package nifti

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// nativeOrder is the byte order of this machine.
var nativeOrder = func() binary.ByteOrder {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()

// prec is the float type one scaling step runs in, or skip when nibabel omits the step.
type prec uint8

const (
	skip prec = iota
	p32
	p64
)

// scalePlan is how stored values become float32, reproducing nibabel's
// apply_read_scaling followed by astype(float32): which steps run and in which precision.
type scalePlan struct {
	mul, add prec
	s32, i32 float32
	s64, i64 float64
}

func (p *scalePlan) none() bool { return p.mul == skip && p.add == skip }

// fits32 mirrors numpy 1.x value-based can_cast(float64 scalar, float32): any finite value
// within float32 range casts (with rounding).
func fits32(v float64) bool { return math.Abs(v) <= math.MaxFloat32 }

// intRange returns the minimum and maximum of an integer datatype.
func intRange(dt Datatype) (float64, float64) {
	switch dt {
	case Uint8:
		return 0, math.MaxUint8
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint16:
		return 0, math.MaxUint16
	case Int32:
		return math.MinInt32, math.MaxInt32
	}
	return 0, math.MaxUint32
}

// planScaling derives the plan for datatype dt and nibabel's (slope, inter), following
// ArrayProxy._get_scaled (slope and intercept cast to float32 when in range), then
// apply_read_scaling (integers: the narrowest float type in which the type's extremes stay
// finite, then numpy promotion of the integer type with it; floats: numpy promotion).
func planScaling(dt Datatype, slope, inter float64) scalePlan {
	s32, i32 := fits32(slope), fits32(inter)
	if s32 {
		slope = float64(float32(slope))
	}
	if i32 {
		inter = float64(float32(inter))
	}
	if slope == 1 && inter == 0 {
		return scalePlan{}
	}
	wide := dt == Int32 || dt == Uint32 || dt == Float64 // promotes float32 to float64
	var p scalePlan
	if dt.isInt() {
		ftype := p64
		if s32 {
			ftype = p32
			lo, hi := intRange(dt)
			for _, v := range []float64{lo, hi} {
				if !finiteScaled32(v, slope, inter, wide) {
					ftype = p64
				}
			}
		}
		c := ftype
		if wide {
			c = p64
		}
		sf, inf := slope, inter
		if ftype == p32 {
			sf, inf = float64(float32(slope)), float64(float32(inter))
		}
		if sf != 1 {
			p.mul = c
		}
		if inf != 0 {
			p.add = c
		}
		p.s32, p.i32, p.s64, p.i64 = float32(sf), float32(inf), sf, inf
		return p
	}
	cur := p32
	if dt == Float64 {
		cur = p64
	}
	if slope != 1 {
		if !s32 {
			cur = p64
		}
		p.mul = cur
	}
	if inter != 0 {
		if !i32 {
			cur = p64
		}
		p.add = cur
	}
	p.s32, p.i32, p.s64, p.i64 = float32(slope), float32(inter), slope, inter
	return p
}

// finiteScaled32 reports whether v*slope+inter stays finite with slope and inter cast to
// float32, computed in float64 when wide (numpy promotes int32/uint32 with float32 to it).
func finiteScaled32(v, slope, inter float64, wide bool) bool {
	s, i := float32(slope), float32(inter)
	if wide {
		x := v
		if s != 1 {
			x *= float64(s)
		}
		if i != 0 {
			x += float64(i)
		}
		return !math.IsInf(x, 0) && !math.IsNaN(x)
	}
	x := float32(v)
	if s != 1 {
		x = float32(x * s)
	}
	if i != 0 {
		x = float32(x + i)
	}
	return !math.IsInf(float64(x), 0) && !math.IsNaN(float64(x))
}

type number interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~float32 | ~float64
}

// convert writes float32(scaled(src[i])) to dst[i]. The common plans have their own
// loops; explicit float32 conversions keep the compiler from fusing multiply and add.
func convert[T number](dst []float32, src []T, p *scalePlan) {
	dst = dst[:len(src)]
	switch {
	case p.none():
		for i, v := range src {
			dst[i] = float32(v)
		}
	case p.mul == p32 && p.add == p32:
		s, b := p.s32, p.i32
		for i, v := range src {
			dst[i] = float32(float32(v)*s) + b
		}
	case p.mul == p32 && p.add == skip:
		s := p.s32
		for i, v := range src {
			dst[i] = float32(v) * s
		}
	case p.mul == skip && p.add == p32:
		b := p.i32
		for i, v := range src {
			dst[i] = float32(v) + b
		}
	case p.mul == p64 && p.add == p64:
		s, b := p.s64, p.i64
		for i, v := range src {
			dst[i] = float32(float64(float64(v)*s) + b)
		}
	default:
		for i, v := range src {
			x := float64(v)
			switch p.mul {
			case p32:
				x = float64(float32(x) * p.s32)
			case p64:
				x *= p.s64
			}
			switch p.add {
			case p32:
				x = float64(float32(x) + p.i32)
			case p64:
				x += p.i64
			}
			dst[i] = float32(x)
		}
	}
}

// convertChunk byte-swaps raw in place when swap is set, then converts its voxels of type
// dt into dst. raw must be 8-byte aligned and hold len(dst) voxels.
func convertChunk(dst []float32, raw []byte, dt Datatype, swap bool, p *scalePlan) {
	n := len(dst)
	if n == 0 {
		return
	}
	size := dt.Size()
	raw = raw[:n*size]
	if swap {
		swapBytes(raw, size)
	}
	ptr := unsafe.Pointer(&raw[0])
	switch dt {
	case Uint8:
		convert(dst, raw, p)
	case Int8:
		convert(dst, unsafe.Slice((*int8)(ptr), n), p)
	case Int16:
		convert(dst, unsafe.Slice((*int16)(ptr), n), p)
	case Uint16:
		convert(dst, unsafe.Slice((*uint16)(ptr), n), p)
	case Int32:
		convert(dst, unsafe.Slice((*int32)(ptr), n), p)
	case Uint32:
		convert(dst, unsafe.Slice((*uint32)(ptr), n), p)
	case Float32:
		convert(dst, unsafe.Slice((*float32)(ptr), n), p)
	case Float64:
		convert(dst, unsafe.Slice((*float64)(ptr), n), p)
	}
}

// swapBytes reverses the byte order of each size-byte element of b in place.
func swapBytes(b []byte, size int) {
	if len(b) == 0 {
		return
	}
	ptr := unsafe.Pointer(&b[0])
	switch size {
	case 2:
		s := unsafe.Slice((*uint16)(ptr), len(b)/2)
		for i, v := range s {
			s[i] = bits.ReverseBytes16(v)
		}
	case 4:
		s := unsafe.Slice((*uint32)(ptr), len(b)/4)
		for i, v := range s {
			s[i] = bits.ReverseBytes32(v)
		}
	case 8:
		s := unsafe.Slice((*uint64)(ptr), len(b)/8)
		for i, v := range s {
			s[i] = bits.ReverseBytes64(v)
		}
	}
}

// alignedBytes returns a zeroed n-byte slice whose start is 8-byte aligned.
func alignedBytes(n int) []byte {
	if n == 0 {
		return nil
	}
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// float32Bytes views f's memory as bytes.
func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// parallelRanges runs fn over [0, n) in ranges of at least grain items on the workers of
// kernels.ParallelFor and returns the error of the first range (lowest lo) that failed, so
// that the error does not depend on scheduling. Every range runs even after a failure.
func parallelRanges(n, grain int, fn func(lo, hi int) error) error {
	var mu sync.Mutex
	var first error
	firstLo := n
	kernels.ParallelFor(n, grain, func(lo, hi int) {
		if err := fn(lo, hi); err != nil {
			mu.Lock()
			if lo < firstLo {
				first, firstLo = err, lo
			}
			mu.Unlock()
		}
	})
	return first
}
