// Package localize finds organs' 3D boxes in a CT volume with MedLAM few-shot localisation:
// a handful of annotated template volumes, a network that maps a 64^3 patch to a latent
// anatomical position and to multi-scale features, and two steps per query (a coarse
// relative-distance regression, then a multi-scale similarity refinement). The method, its
// constants and the reference's quirks are described in ../shared/notes/method.md,
// sections 1-4; this package follows them and names every deliberate deviation.
//
// Data flows one way:
//
//   - preprocess.go: a volume is reoriented to LAS, resampled to 3 mm and, when it looks like
//     raw HU, normalised; the result is a Grid indexed (z, y, x). The 32-voxel zero padding
//     of the method is virtual: patches are cut with zeros outside the volume, and point
//     coordinates are kept in the padded frame where the method computes in it.
//   - templates.go: the template points of each organ (six extreme points, "WPL", or six per
//     z chunk, "SPL") and one batched pass of the network over all of them, giving each
//     point's averaged position vector and its similarity kernels.
//   - templateset.go: the result as a versioned file that records the model it came from.
//   - query.go: the coarse step (random crops near the centre through the encoder-only
//     network) and the refinement (one crop per point through the full network, then the
//     similarity search of package kernels).
//   - box.go: points mapped back through padding, resampling and reorientation to the query
//     file's own voxel grid, and one box per organ (per chunk in SPL mode).
//
// Network calls go through backend.Model (engine/backend) in batches of at most
// Config.BatchSize patches, so the results do not depend on the batch size when the backend
// computes each batch entry independently (ONNX Runtime on the CPU does).
package localize
