package gpu

import (
	"errors"
	"testing"
)

func TestErrorIs(t *testing.T) {
	tests := []struct {
		code   int
		target error
		want   bool
	}{
		{codeNoMem, ErrOutOfMemory, true},
		{codeNoDev, ErrNoDevice, true},
		{codeInvalid, ErrInvalid, true},
		{codeCUDA, ErrOutOfMemory, false},
		{codeNoMem, ErrInvalid, false},
	}
	for _, tc := range tests {
		e := &Error{Op: "op", Code: tc.code, Message: "m"}
		if got := errors.Is(e, tc.target); got != tc.want {
			t.Errorf("code %d Is(%v) = %v, want %v", tc.code, tc.target, got, tc.want)
		}
	}
}
