package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
	"github.com/medlsam-fast/medlsam-fast/internal/atomicfile"
)

func init() {
	register(command{
		name:    "phantom",
		summary: "write a deterministic CT-like phantom and its label map (.nii.gz)",
		run:     runPhantom,
	})
}

func runPhantom(args []string, stdout io.Writer) error {
	fs := newFlags("phantom", "OUTDIR", stdout)
	shape := fs.IntSlice("shape", []int{128, 128, 96}, "grid size along world x, y, z")
	spacing := fs.Float64Slice("spacing", []float64{1.5, 1.5, 2.5},
		"voxel size in mm along x, y, z")
	orient := fs.String("orientation", "LPS",
		"orientation code of the written grid (RAS, LPS, ...)")
	seed := fs.Int64("seed", 1, "seed of the organ layout and the noise")
	noise := fs.Float64("noise", 10, "Gaussian noise standard deviation in HU")
	lungs := fs.Bool("lungs", true, "add the lung bases at the top")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one output directory, got %d arguments", errUsage, fs.NArg())
	}
	if len(*shape) != 3 || len(*spacing) != 3 {
		return fmt.Errorf("%w: --shape and --spacing take three values each", errUsage)
	}
	cfg := phantom.Config{
		Shape:       [3]int{(*shape)[0], (*shape)[1], (*shape)[2]},
		Spacing:     [3]float64{(*spacing)[0], (*spacing)[1], (*spacing)[2]},
		Orientation: *orient,
		Seed:        *seed,
		Noise:       *noise,
		Lungs:       *lungs,
	}
	p, err := phantom.Generate(cfg)
	if err != nil {
		return err
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("phantom: output directory: %w", err)
	}
	img := filepath.Join(dir, "phantom_ct.nii.gz")
	lab := filepath.Join(dir, "phantom_labels.nii.gz")
	names := filepath.Join(dir, "phantom_labels.json")
	if err := nifti.Write(img, p.Image, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		return err
	}
	if err := nifti.Write(lab, p.Labels, nifti.WriteOptions{Datatype: nifti.Uint8}); err != nil {
		os.Remove(img)
		return err
	}
	m := map[string]string{}
	for _, o := range p.Organs {
		m[strconv.Itoa(o.Label)] = o.Name
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		os.Remove(img)
		os.Remove(lab)
		return fmt.Errorf("phantom: label names: %w", err)
	}
	if err := writeFileAtomic(names, append(b, '\n')); err != nil {
		os.Remove(img)
		os.Remove(lab)
		return err
	}
	fmt.Fprintf(stdout, "phantom: %v voxels at %v mm, %s, %d organs, seed %d\n",
		p.Image.Shape, p.Image.Spacing, *orient, len(p.Organs), *seed)
	fmt.Fprintf(stdout, "wrote %s\nwrote %s\nwrote %s\n", img, lab, names)
	return nil
}

// writeFileAtomic writes data to path through a temporary file and a rename, so that path
// never holds a partial file.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
