package main

import (
	"fmt"
	"io"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func init() {
	register(command{
		name:    "resample",
		summary: "resample a NIfTI image or label map to a new voxel spacing",
		run:     runResample,
	})
}

func runResample(args []string, stdout io.Writer) error {
	fs := newFlags("resample", "IN.nii[.gz] OUT.nii[.gz]", stdout)
	spacing := fs.Float64Slice("spacing", []float64{3, 3, 3},
		"target voxel size in mm along i, j, k")
	labels := fs.Bool("labels", false,
		"the input is a label map: nearest neighbour, integer output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: want IN and OUT, got %d arguments", errUsage, fs.NArg())
	}
	if len(*spacing) != 3 {
		return fmt.Errorf("%w: --spacing takes three values", errUsage)
	}
	in, out := fs.Arg(0), fs.Arg(1)

	t0 := time.Now()
	img, err := nifti.Read(in, nifti.ReadOptions{})
	if err != nil {
		return err
	}
	t1 := time.Now()
	mode, dt := volume.Linear, nifti.Float32
	if *labels {
		mode, dt = volume.Nearest, nifti.Int16
	}
	r, err := img.Volume.Resample([3]float64{(*spacing)[0], (*spacing)[1], (*spacing)[2]}, mode)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	t2 := time.Now()
	if err := nifti.Write(out, r, nifti.WriteOptions{Datatype: dt, Like: img.Header}); err != nil {
		return err
	}
	t3 := time.Now()

	v := img.Volume
	fmt.Fprintf(stdout, "read     %s: %v voxels at %.3g x %.3g x %.3g mm, %s, %s (%s)\n",
		in, v.Shape, v.Spacing[0], v.Spacing[1], v.Spacing[2], img.Header.Datatype,
		volume.OrientationOf(v.Affine), t1.Sub(t0).Round(time.Millisecond))
	fmt.Fprintf(stdout, "resample %s -> %v voxels at %.3g x %.3g x %.3g mm (%s)\n",
		mode, r.Shape, r.Spacing[0], r.Spacing[1], r.Spacing[2], t2.Sub(t1).Round(time.Millisecond))
	fmt.Fprintf(stdout, "wrote    %s as %s, same world geometry (%s)\n",
		out, dt, t3.Sub(t2).Round(time.Millisecond))
	return nil
}
