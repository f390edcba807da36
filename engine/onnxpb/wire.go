package onnxpb

import (
	"encoding/binary"
	"fmt"
)

// Protobuf wire types (the low three bits of a field's tag).
const (
	wireVarint  = 0 // int32, int64, uint64, bool, enum
	wire64      = 1 // fixed64, sfixed64, double
	wireBytes   = 2 // string, bytes, embedded messages, packed repeated fields
	wireStart   = 3 // start of a group (deprecated)
	wireEnd     = 4 // end of a group (deprecated)
	wire32      = 5 // fixed32, sfixed32, float
	maxVarint   = 10
	maxFieldNum = 1<<29 - 1
)

// wireName is the name of a wire type in error messages.
func wireName(w int) string {
	switch w {
	case wireVarint:
		return "varint"
	case wire64:
		return "64-bit"
	case wireBytes:
		return "length-delimited"
	case wireStart:
		return "start-group"
	case wireEnd:
		return "end-group"
	case wire32:
		return "32-bit"
	}
	return fmt.Sprintf("invalid wire type %d", w)
}

// field is one decoded field of a message. Which value is set depends on wire: val for
// varint, 64-bit and 32-bit fields, data (a sub-slice of the message, not a copy) for
// length-delimited ones.
type field struct {
	num  int    // field number
	wire int    // wire type
	val  uint64 // varint, 64-bit or 32-bit value
	data []byte // length-delimited payload
	off  int    // absolute offset of the field's tag in the file
}

// message walks the fields of one encoded protobuf message.
type message struct {
	buf  []byte // the message's bytes
	pos  int    // next unread byte of buf
	base int    // absolute offset of buf[0] in the file, for error messages
}

// newMessage returns a walker over buf, whose first byte lies at absolute offset base.
func newMessage(buf []byte, base int) *message { return &message{buf: buf, base: base} }

// done reports whether every byte of the message has been consumed.
func (m *message) done() bool { return m.pos >= len(m.buf) }

// varint decodes a base-128 varint at m.pos. what names the value for errors.
func (m *message) varint(what string) (uint64, error) {
	var v uint64
	start := m.pos
	for i := 0; i < maxVarint; i++ {
		if m.pos >= len(m.buf) {
			return 0, fmt.Errorf("truncated %s varint at byte %d", what, m.base+start)
		}
		b := m.buf[m.pos]
		m.pos++
		if i == maxVarint-1 && b > 1 {
			return 0, fmt.Errorf("%s varint at byte %d overflows 64 bits", what, m.base+start)
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s varint at byte %d overflows 64 bits", what, m.base+start)
}

// next decodes the next field. Groups, wire types 6 and 7, field number 0 and field
// numbers above 2^29-1 are errors, as are fields that run past the end of the message.
func (m *message) next() (field, error) {
	off := m.base + m.pos
	tag, err := m.varint("field tag")
	if err != nil {
		return field{}, err
	}
	f := field{num: int(tag >> 3), wire: int(tag & 7), off: off}
	if tag>>3 == 0 || tag>>3 > maxFieldNum {
		return field{}, fmt.Errorf("invalid field number %d at byte %d", tag>>3, off)
	}
	rest := len(m.buf) - m.pos
	switch f.wire {
	case wireVarint:
		f.val, err = m.varint(fmt.Sprintf("field %d", f.num))
		if err != nil {
			return field{}, err
		}
	case wire64:
		if rest < 8 {
			return field{}, fmt.Errorf("truncated 64-bit field %d at byte %d: %d bytes left, need 8", f.num, off, rest)
		}
		f.val = binary.LittleEndian.Uint64(m.buf[m.pos:])
		m.pos += 8
	case wire32:
		if rest < 4 {
			return field{}, fmt.Errorf("truncated 32-bit field %d at byte %d: %d bytes left, need 4", f.num, off, rest)
		}
		f.val = uint64(binary.LittleEndian.Uint32(m.buf[m.pos:]))
		m.pos += 4
	case wireBytes:
		n, err := m.varint(fmt.Sprintf("field %d length", f.num))
		if err != nil {
			return field{}, err
		}
		rest = len(m.buf) - m.pos
		if n > uint64(rest) {
			return field{}, fmt.Errorf("field %d at byte %d has length %d, beyond the %d bytes left in its message", f.num, off, n, rest)
		}
		f.data = m.buf[m.pos : m.pos+int(n) : m.pos+int(n)]
		m.pos += int(n)
	case wireStart, wireEnd:
		return field{}, fmt.Errorf("field %d at byte %d is a group (wire type %d), which is not supported", f.num, off, f.wire)
	default:
		return field{}, fmt.Errorf("field %d at byte %d has invalid wire type %d", f.num, off, f.wire)
	}
	return f, nil
}

// dataOffset is the absolute offset of the first payload byte of a length-delimited field
// f read from m: the payload is the last len(f.data) bytes read.
func (m *message) dataOffset(f field) int { return m.base + m.pos - len(f.data) }

// wantWire returns an error unless f has one of the wire types in ok. what names the field.
func wantWire(f field, what string, ok ...int) error {
	for _, w := range ok {
		if f.wire == w {
			return nil
		}
	}
	want := wireName(ok[0])
	if len(ok) > 1 {
		want += " or " + wireName(ok[1])
	}
	return fmt.Errorf("field %d (%s) at byte %d has wire type %s, want %s", f.num, what, f.off, wireName(f.wire), want)
}

// countVarints returns how many varints a packed repeated varint field holds: the number
// of bytes without the continuation bit. It fails if the last varint is incomplete.
func countVarints(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n, len(b) == 0 || b[len(b)-1] < 0x80
}
