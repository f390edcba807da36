// Package phantom generates deterministic CT-like test volumes with known anatomy: a body
// ellipsoid of fat and soft tissue in air, a bony spine, abdominal organs as (possibly
// rotated) ellipsoids with realistic Hounsfield units, and optional lung bases, together with
// a label map that uses the label values of the shared abdomen CT
// (../shared/data/ct/abdomen_ct_labels.json: spleen 1, kidney_right 2, kidney_left 3, ...).
//
// The anatomy is defined once in world millimetres (RAS+, origin at the centre of the field of
// view) and sampled on a grid of any orientation code, so the same seed gives the same anatomy
// whatever the code: reorienting an "LPS" phantom to "RAS" reproduces the "RAS" phantom voxel
// for voxel. Because every organ is an analytic ellipsoid, tests can compare what the
// pipeline finds (boxes, extreme points) with answers known in closed form.
//
// Generation is deterministic for a given Config: the organ layout is drawn from a PCG stream
// seeded with Config.Seed and the noise of each voxel is a hash of the seed and the voxel's
// position on the RAS grid, so the result does not depend on the number of goroutines that
// fill it.
package phantom
