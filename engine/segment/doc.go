// Package segment turns organ boxes into 3D organ masks with SAM or MedSAM (ViT-B), as
// MedLSAM does (../shared/notes/method.md, section 5), without its waste and without any
// use of ground truth.
//
// Data flows one way: the query volume (its own grid, not reoriented; slices along the
// third voxel axis k) is windowed once (kernels.SAMWindow: [-500, 1000] HU, min-max over
// the volume to 0..255, raw 0 kept 0, truncated); the slices that any box covers, from the
// box's first to its last k inclusive, are preprocessed (kernels.SAMPreprocess: slice k is
// the (j, i) plane, H = NY rows, W = NX columns, as the reference reads it from SimpleITK's
// (z, y, x) array, resized to 1024 x 1024, SAM mean/std, written in the encoder's
// [B, 3, 1024, 1024] layout) and each is encoded exactly once, in batches of
// Config.BatchSize, whatever the number of organs on it. Every organ's prompt box
// (Box1024: corners scaled by 1024/W and 1024/H, rounded, widened by 10 pixels, clipped)
// is decoded with all the other boxes of the same slice in one decoder call, and the
// low-resolution logits go through kernels.SAMMaskPost (sigmoid, bilinear to 1024 with
// align_corners false, OpenCV nearest to H x W, probability > 0.5, composed into one
// direct mapping) into one multi-label map.
//
// Overlaps: a voxel that two organs' masks claim goes to the organ whose mask has the
// higher probability there; equal probabilities go to the organ listed first. The
// reference writes one file per organ and never resolves overlaps.
//
// Decoder layouts (DetectLayout, from the model's input names): the project's own export
// (image_embeddings [B,256,64,64], boxes [B,4]: one call per slice), and the public
// segment-anything ONNX layout (image_embeddings, point_coords, point_labels, mask_input,
// has_mask_input, orig_im_size), whose embedding batch is fixed at 1, so each box is its own
// call; channel 0 of its low_res_masks (the single-mask output) is used, as the reference
// uses multimask_output=False.
//
// Differences from the reference, deliberate:
//
//   - No ground-truth slice selection: every slice of the box is segmented.
//   - Resize: linear interpolation with half-pixel centres (antialiased triangle filter
//     when shrinking) where the reference uses skimage's cubic spline (order 3,
//     anti_aliasing, mode constant); see kernels.LinearTaps. Measured on the abdomen CT
//     (../shared/data/ct, 122 x 101 x 112) with the tiny random SAM models, same box on
//     both (/usr/bin/python3 build/bench/segment_compare.py resize --organ N, which runs
//     TestResizeEffect): grey values differ by 1.37 on average (at most 51, at sharp
//     edges, where the spline overshoots); Dice between the two 3D masks 0.9923 over the
//     spleen box's 30 slices and 0.9910 over the liver box's 43. Random weights say
//     nothing about a trained model's sensitivity; rerun with the official checkpoints.
//   - The reference resizes the 1024 mask with cv2.resize(prob, (rows, cols)), which swaps
//     width and height and fails for non-square slices; here the mask takes the slice's
//     own H x W.
//   - Boxes are clipped to the image.
//
// The windowed volume (one byte per voxel) and the label map (int16) are whole-volume
// buffers; slices are encoded in order, so memory beyond them is one encoder batch.
package segment
