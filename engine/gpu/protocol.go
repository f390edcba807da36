package gpu

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrame bounds one message between supervisor and worker. Messages carry paths and
// results (boxes, file names), never volumes, which go through files.
const MaxFrame = 16 << 20

// Request is one job sent to the worker.
type Request struct {
	ID    uint64          `json:"id"`
	Batch int             `json:"batch"` // the encoder batch to use
	Job   json.RawMessage `json:"job"`   // the job, as the worker's handler reads it
}

// Response is the worker's answer to the Request with the same ID.
type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Err    string          `json:"err,omitempty"`
	// OOM marks an error the worker survived that a smaller batch may avoid (device memory).
	OOM bool `json:"oom,omitempty"`
}

// writeFrame writes v as a 4-byte big-endian length and its JSON.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("gpu: encode frame: %w", err)
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("gpu: frame of %d bytes exceeds %d", len(b), MaxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("gpu: write frame: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("gpu: write frame: %w", err)
	}
	return nil
}

// readFrame reads one frame into v. A clean end of stream before a frame is io.EOF; a
// truncated frame is io.ErrUnexpectedEOF; a length above MaxFrame is refused before any
// allocation.
func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("gpu: read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return fmt.Errorf("gpu: frame of %d bytes exceeds %d", n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("gpu: read frame body: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("gpu: decode frame: %w", err)
	}
	return nil
}
