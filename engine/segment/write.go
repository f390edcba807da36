package segment

import (
	"fmt"
	"os"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// Write stores the label map of r at path (.nii or .nii.gz) with the query's exact geometry:
// like is the query's header, whose qform/sform codes and affine are kept (nifti.Write
// with WriteOptions.Like), voxels as uint8 when every label fits, int16 otherwise. With
// perOrgan, it also writes one binary mask per organ beside it, named
// <path without extension>_label<N>.nii.gz, cut from the resolved multi-label map (so a
// voxel that two organs claim is in the winner's file only). It returns the files written;
// on failure it removes those it wrote and returns none, so no partial set is left.
func Write(r *Result, like *nifti.Header, path string, perOrgan bool) (files []string,
	err error) {
	dt := nifti.Uint8
	for _, o := range r.Report.Organs {
		if o.Label > 255 {
			dt = nifti.Int16
		}
	}
	if err := nifti.Write(path, r.Labels, nifti.WriteOptions{Datatype: dt,
		Like: like}); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if !perOrgan {
		return []string{path}, nil
	}
	masks, err := WriteOrganMasks(r.Labels, r.Report.Organs, like, path)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return append([]string{path}, masks...), nil
}

// WriteOrganMasks writes, beside the label map stored at path, one binary mask per organ
// of organs (a Report's) cut from the label map vol (<path without
// extension>_label<N>.nii.gz, uint8, the geometry of like), and returns their names. On
// failure it removes those it wrote and returns none.
func WriteOrganMasks(vol *volume.Volume, organs []OrganReport, like *nifti.Header,
	path string) (files []string, err error) {
	defer func() {
		if err != nil {
			for _, f := range files {
				os.Remove(f)
			}
			files = nil
		}
	}()
	stem := strings.TrimSuffix(strings.TrimSuffix(path, ".gz"), ".nii")
	m := &volume.Volume{Data: make([]float32, len(vol.Data)), Shape: vol.Shape,
		Spacing: vol.Spacing, Affine: vol.Affine}
	for _, o := range organs {
		label := o.Label
		want := float32(label)
		for i, v := range vol.Data {
			m.Data[i] = 0
			if v == want {
				m.Data[i] = 1
			}
		}
		p := fmt.Sprintf("%s_label%d.nii.gz", stem, label)
		opt := nifti.WriteOptions{Datatype: nifti.Uint8, Like: like}
		if err := nifti.Write(p, m, opt); err != nil {
			return files, fmt.Errorf("segment: %w", err) // the deferred clean-up reads files
		}
		files = append(files, p)
	}
	return files, nil
}
