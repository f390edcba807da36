package gpu

import "fmt"

// FormatVersion writes a CUDA version number as CUDA encodes it (major*1000 + minor*10,
// e.g. 11080 from cudaRuntimeGetVersion) as "major.minor" ("11.8").
func FormatVersion(v int) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}
