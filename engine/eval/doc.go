// Package eval scores localisation and segmentation results against a reference label map
// with the definitions the MedLSAM paper publishes: 3D box IoU and wall distance for boxes
// (box.go), Dice and HD95 for masks.
//
// Boxes are inclusive voxel-index ranges of the scored file's own grid (NIfTI i, j, k);
// distances are in millimetres through the grid's voxel spacing.
package eval
