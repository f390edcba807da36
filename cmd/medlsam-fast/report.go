package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// writeReport writes the JSON report v of a subcommand: indented, atomically to path when
// path is not empty (so a failed run never leaves a partial file there), and on stdout when
// path is empty, unless summary is given, in which case summary prints on stdout instead.
func writeReport(stdout io.Writer, v any, path string, summary func(io.Writer) error) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	b = append(b, '\n')
	if path != "" {
		if err := writeFileAtomic(path, b); err != nil {
			return err
		}
	}
	switch {
	case summary != nil:
		return summary(stdout)
	case path == "":
		_, err = stdout.Write(b)
		return err
	}
	return nil
}
