// Package kernels holds the CPU reference kernels of the pipeline: resampling to a target
// spacing (resample.go; the reference implementation's own resamplings in zoom.go), the
// intensity transforms of MedLAM and SAM (intensity.go), MedLAM's multi-scale similarity
// search (similarity*.go, on the GEMM tiles of gemm*.go) and SAM's slice pre- and
// post-processing (sampre.go, maskpost.go). The CUDA kernels of the GPU
// path are checked against these, so each kernel states the exact convention it implements.
//
// The package is Go (with amd64 and arm64 assembly for the GEMM tiles) and depends only on
// the standard library. Volume kernels take plain []float32 slices and [3]int shapes
// [NX, NY, NZ] with i fastest: voxel (i, j, k) lives at index i + NX*(j + NY*k), the layout
// of engine/volume. They never import engine/volume; that package wraps them and keeps the
// geometry (affine, spacing) right.
//
// Kernels spread their work over Workers() goroutines through ParallelFor, which other
// packages use too rather than keeping their own worker loops. The resampling and intensity
// kernels allocate nothing proportional to the volume (ZoomCubic's two intermediate
// volumes aside): callers own and provide the output slices. A kernel never retains a
// slice after it returns. Distinct calls on distinct slices may run concurrently.
//
// # Resampling grid
//
// Every resampling kernel follows one grid convention, and its CUDA twin matches it exactly:
//
//   - Voxel centres of index 0 are aligned. Along each axis, with ratio r = newSpacing /
//     oldSpacing, output index o samples the input at the continuous index x = o*r.
//   - The output size is n_out = floor((n_in-1)/r + 1e-9) + 1, so every sample lies inside
//     [0, n_in-1]: nothing is extrapolated, and the last output voxel may stop short of the
//     last input voxel by less than one output voxel.
//   - The voxel-to-world affine of the output is A * diag(r_i, r_j, r_k, 1), so every output
//     voxel centre keeps its world position and the output spacing is exactly the requested
//     one.
//   - Trilinear (images): along each axis x0 = floor(x), weight w = x - x0, upper neighbour
//     x0+1 clamped to n_in-1 (it only matters, with weight 0, when x == n_in-1). Weights are
//     computed in float64 and applied in float32.
//   - Nearest (labels): index floor(x + 0.5), clamped to [0, n_in-1]; values are copied, so a
//     label map keeps only the labels it had.
//
// How this differs from the tools the reference method uses:
//
//   - scipy.ndimage.zoom (grid_mode=False, its default) aligns the corners instead: it makes
//     n_out = round(n_in*zoom) and maps output o to input o*(n_in-1)/(n_out-1). Its effective
//     spacing is therefore (n_in-1)/(n_out-1) times the old one, slightly off the requested
//     spacing, and the last voxels of both grids coincide. The reference method also uses
//     order 3 (cubic spline) on float64 for images, and one-hot -> trilinear -> argmax for
//     label maps, where this convention uses trilinear and nearest.
//   - torch.nn.functional.interpolate with align_corners=False uses half-pixel centres: o maps
//     to (o+0.5)*n_in/n_out - 0.5, clamped at 0, so voxel 0 of both grids is not aligned
//     and the volume edges are, at the cost of clamping near them.
//
// For parity with the reference, zoom.go has both of its resamplings on their own grids:
// ZoomCubic (scipy's zoom: cubic B-spline, mirror boundaries, corner-aligned grid, values
// within float32 rounding of scipy's, its zeroed far faces included) and
// ResampleLabelsOneHot (torch's one-hot trilinear argmax on the half-pixel grid of a scale
// factor). ZoomCubic has a CUDA twin (kernels/cuda/zoom.cu, bit for bit;
// PlanZoomCubic hands it the CPU's tables); label maps are only the templates' and resample
// on the CPU. They cost more: on the 512 x 512 x 300 benchmark CT, 0.16 s and
// 0.05 s against 0.015 s for ResampleTrilinear, still 21x and 35x faster than the
// reference's scipy and torch calls (build/bench/resample_compare.py, figures in the
// README).
package kernels
