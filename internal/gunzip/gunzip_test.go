package gunzip

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func gz(t *testing.T, members ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range members {
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// ctLike returns n bytes that compress about as CT voxels do: smooth values plus noise.
func ctLike(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int(40*(1+float64(i%512)/512)) + rng.IntN(9))
	}
	return b
}

func readAll(t *testing.T, compressed []byte, src func(io.Reader) io.Reader) ([]byte, error) {
	t.Helper()
	z, err := NewReader(src(bytes.NewReader(compressed)))
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return io.ReadAll(z)
}

func TestRoundTrips(t *testing.T) {
	big := ctLike(3<<20, 1) // more than the 256 KiB input buffer once compressed
	cases := []struct {
		name    string
		members [][]byte
	}{
		{"empty member", [][]byte{{}}},
		{"small", [][]byte{[]byte("nifti voxels")}},
		{"large", [][]byte{big}},
		{"two members", [][]byte{big[:1000], big[1000:300000]}},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, tc := range cases {
		want := bytes.Join(tc.members, nil)
		data := gz(t, tc.members...)
		for rn, src := range readers {
			if rn == "one byte" && len(data) > 1<<16 {
				continue
			}
			got, err := readAll(t, data, src)
			if err != nil {
				t.Fatalf("%s, %s reader: %v", tc.name, rn, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, %s reader: %d bytes differ from the %d written", tc.name, rn,
					len(got), len(want))
			}
		}
	}
}

func TestBadStreams(t *testing.T) {
	data := gz(t, ctLike(200000, 2))
	crc := bytes.Clone(data)
	crc[len(crc)-6] ^= 0xff // the CRC-32 in the trailer
	corrupt := bytes.Clone(data)
	for i := 20; i < 60; i++ {
		corrupt[i] = 0xff
	}
	cases := []struct {
		name string
		data []byte
		want string // "eof": io.ErrUnexpectedEOF; "any": any error; else a substring
	}{
		{"truncated in the data", data[:len(data)/2], "eof"},
		{"truncated trailer", data[:len(data)-3], "eof"},
		{"crc mismatch", crc, "check"},
		{"corrupt deflate data", corrupt, "any"},
		{"trailing garbage", append(bytes.Clone(data), "garbage!"...), "any"},
	}
	for _, tc := range cases {
		_, err := readAll(t, tc.data, func(r io.Reader) io.Reader { return r })
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.want == "eof" && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: error %v, want io.ErrUnexpectedEOF", tc.name, err)
		}
		if tc.want != "eof" && tc.want != "any" && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	for _, bad := range [][]byte{nil, {0x1f}, []byte("not gzip at all")} {
		if _, err := NewReader(bytes.NewReader(bad)); err == nil {
			t.Errorf("NewReader(%q) accepted a stream without a gzip header", bad)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	z, err := NewReader(bytes.NewReader(gz(t, []byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkCTLike(b *testing.B) {
	raw := ctLike(8<<20, 3)
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(raw)
	w.Close()
	out := make([]byte, len(raw))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		z, err := NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(z, out); err != nil {
			b.Fatal(err)
		}
		z.Close()
	}
}
