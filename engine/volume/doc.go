// Package volume holds the in-memory 3D image every stage works on: voxels as float32 in the
// NIfTI storage order, the grid shape, the voxel spacing and the voxel-to-world affine.
//
// Index convention: a Volume of shape [NX, NY, NZ] (the NIfTI i, j, k axes) stores voxel
// (i, j, k) at Data[i + NX*(j + NY*k)]. Read as a C-order array this is [k][j][i], the
// (z, y, x) order the MedLSAM method uses: array axis 0 is the third NIfTI axis.
//
// The affine maps (i, j, k, 1) to world millimetres in the NIfTI convention, RAS+: world x
// grows towards the subject's Right, y towards Anterior, z towards Superior. Orientation codes
// follow nibabel's aff2axcodes: letter n names the world direction that voxel axis n points
// to, so "LPS" means i grows towards Left, j towards Posterior, k towards Superior.
package volume
