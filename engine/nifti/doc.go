// Package nifti reads and writes NIfTI-1 and NIfTI-2 images (.nii and .nii.gz) into
// volume.Volume values with the geometry nibabel would report for the same file.
//
// Read accepts either byte order, honours vox_offset (extensions are kept, raw, in the
// Header), converts the eight common scalar datatypes to float32 after applying
// scl_slope/scl_inter with nibabel's precision rules, and chooses the affine as nibabel's
// get_best_affine does: the sform when sform_code > 0, else the qform when qform_code > 0,
// else nibabel's fallback built from the shape and pixdim. Every problem with the input is
// returned as an error naming the file and the header field; Read never panics on bad
// input and never allocates more voxel memory than ReadOptions.MaxBytes.
//
// Write stores a Volume as NIfTI-1 (.nii or .nii.gz) atomically, keeping the geometry
// codes, units and description of a source Header so that outputs overlay their input.
//
// Where nibabel repairs a header silently (zero or negative pixdim, vox_offset below the
// header), this package refuses the file instead; see Read for the list.
package nifti
