package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestExitCodes checks main's contract for every subcommand: --help exits 0 and prints the
// usage, an unknown flag is a usage error (exit 2).
func TestExitCodes(t *testing.T) {
	names := []string{"doctor", "eval", "info", "localize", "phantom", "resample", "segment"}
	for _, name := range names {
		if _, ok := commands[name]; !ok {
			t.Fatalf("command %q is not registered", name)
		}
		for _, tc := range []struct {
			arg  string
			code int
		}{
			{"--help", 0},
			{"--no-such-flag", 2},
		} {
			var out, errOut bytes.Buffer
			code := run([]string{name, tc.arg}, &out, &errOut)
			if code != tc.code {
				t.Errorf("%s %s: exit %d, want %d (stderr %q)", name, tc.arg, code, tc.code,
					errOut.String())
			}
			if tc.code == 0 && !strings.Contains(out.String(), "usage: medlsam-fast "+name) {
				t.Errorf("%s --help printed %q", name, out.String())
			}
		}
	}
}
