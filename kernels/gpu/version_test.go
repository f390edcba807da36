package gpu

import "testing"

func TestFormatVersion(t *testing.T) {
	tests := []struct {
		v    int
		want string
	}{
		{11080, "11.8"},
		{12040, "12.4"},
		{13000, "13.0"},
		{9020, "9.2"},
		{0, "unknown"},
		{-1, "unknown"},
	}
	for _, tc := range tests {
		if got := FormatVersion(tc.v); got != tc.want {
			t.Errorf("FormatVersion(%d) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
