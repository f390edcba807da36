package segment

import (
	"fmt"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// Write stores the label map of r at path (.nii or .nii.gz) with the query's exact geometry:
// like is the query's header, whose qform/sform codes and affine are kept (nifti.Write
// with WriteOptions.Like), voxels as uint8 when every label fits, int16 otherwise. With
// perOrgan, it also writes one binary mask per organ beside it, named
// <path without extension>_label<N>.nii.gz, cut from the resolved multi-label map (so a
// voxel that two organs claim is in the winner's file only). It returns the files written.
func Write(r *Result, like *nifti.Header, path string, perOrgan bool) ([]string, error) {
	dt := nifti.Uint8
	for _, o := range r.Report.Organs {
		if o.Label > 255 {
			dt = nifti.Int16
		}
	}
	if err := nifti.Write(path, r.Labels, nifti.WriteOptions{Datatype: dt, Like: like}); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	files := []string{path}
	if !perOrgan {
		return files, nil
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(path, ".gz"), ".nii")
	for _, o := range r.Report.Organs {
		m := &volume.Volume{Data: make([]float32, len(r.Labels.Data)), Shape: r.Labels.Shape,
			Spacing: r.Labels.Spacing, Affine: r.Labels.Affine}
		want := float32(o.Label)
		for i, v := range r.Labels.Data {
			if v == want {
				m.Data[i] = 1
			}
		}
		p := fmt.Sprintf("%s_label%d.nii.gz", stem, o.Label)
		if err := nifti.Write(p, m, nifti.WriteOptions{Datatype: nifti.Uint8, Like: like}); err != nil {
			return files, fmt.Errorf("segment: %w", err)
		}
		files = append(files, p)
	}
	return files, nil
}
