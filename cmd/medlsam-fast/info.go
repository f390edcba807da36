package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func init() {
	register(command{
		name:    "info",
		summary: "describe NIfTI images: shape, datatype, spacing, orientation, affine, range",
		run:     runInfo,
	})
}

// imageInfo is one line of "info --json"; scripts rely on these keys.
type imageInfo struct {
	Path        string        `json:"path"`
	Shape       [3]int        `json:"shape"`
	Datatype    string        `json:"datatype"`
	Spacing     [3]float64    `json:"spacing"`
	Affine      volume.Affine `json:"affine"`
	Orientation string        `json:"orientation"`
	Min         *float64      `json:"min"`
	Max         *float64      `json:"max"`
	Mean        *float64      `json:"mean"`
	NonFinite   int           `json:"nonfinite"`
	Version     int           `json:"nifti_version"`
	QformCode   int32         `json:"qform_code"`
	SformCode   int32         `json:"sform_code"`
	Extensions  int           `json:"extensions"`
}

func runInfo(args []string, stdout io.Writer) error {
	fs := newFlags("info", "FILE...", stdout)
	asJSON := fs.Bool("json", false, "print one JSON object per file, one per line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no file given", errUsage)
	}
	var errs []error
	for _, p := range fs.Args() {
		img, err := nifti.Read(p, nifti.ReadOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info := describe(p, img)
		if *asJSON {
			b, err := json.Marshal(info)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		printInfo(stdout, info)
	}
	return errors.Join(errs...)
}

// describe gathers what info prints. Min, max and mean are over the finite voxels (NaN and
// infinite ones are counted in NonFinite, and JSON cannot hold them) and stay nil when no
// voxel is finite.
func describe(path string, img *nifti.Image) imageInfo {
	v, h := img.Volume, img.Header
	info := imageInfo{
		Path: path, Shape: v.Shape, Datatype: h.Datatype.String(), Spacing: v.Spacing,
		Affine: v.Affine, Orientation: volume.OrientationOf(v.Affine), Version: h.Version,
		QformCode: h.QformCode, SformCode: h.SformCode, Extensions: len(h.Extensions),
	}
	lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, 0
	for _, x := range v.Data {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			info.NonFinite++
			continue
		}
		lo, hi = math.Min(lo, f), math.Max(hi, f)
		sum += f
		n++
	}
	if n > 0 {
		mean := sum / float64(n)
		info.Min, info.Max, info.Mean = &lo, &hi, &mean
	}
	return info
}

func printInfo(w io.Writer, in imageInfo) {
	fmt.Fprintf(w, "%s\n", in.Path)
	fmt.Fprintf(w, "  shape        %d x %d x %d\n", in.Shape[0], in.Shape[1], in.Shape[2])
	fmt.Fprintf(w, "  datatype     %s (NIfTI-%d, %d extension(s))\n", in.Datatype, in.Version,
		in.Extensions)
	fmt.Fprintf(w, "  spacing      %g x %g x %g mm\n", in.Spacing[0], in.Spacing[1],
		in.Spacing[2])
	fmt.Fprintf(w, "  orientation  %s (qform code %d, sform code %d)\n", in.Orientation,
		in.QformCode, in.SformCode)
	for r, row := range in.Affine {
		label := "affine      "
		if r > 0 {
			label = strings.Repeat(" ", len(label))
		}
		fmt.Fprintf(w, "  %s [%10.4f %10.4f %10.4f %10.4f]\n", label, row[0], row[1], row[2],
			row[3])
	}
	if in.Min == nil {
		fmt.Fprintf(w, "  intensity    no finite voxel (%d NaN or infinite)\n", in.NonFinite)
		return
	}
	fmt.Fprintf(w, "  intensity    min %g, max %g, mean %.6g", *in.Min, *in.Max, *in.Mean)
	if in.NonFinite > 0 {
		fmt.Fprintf(w, " over the finite voxels; %d NaN or infinite", in.NonFinite)
	}
	fmt.Fprintln(w)
}
