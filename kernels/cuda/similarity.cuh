// MedLAM's multi-scale similarity search (method step 4.3), batched over points.
#ifndef MEDLSAM_SIMILARITY_CUH
#define MEDLSAM_SIMILARITY_CUH

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

#define MLK_SIM_MAX_SCALES 8

// mlk_sim_scale is kernels.SimilarityScale: feature edge S, kernel edge k, channels C.
typedef struct {
    int size, kernel, channels;
} mlk_sim_scale;

// mlk_sim_result is one point's match: index q = (z*P + y)*P + x of the first maximum of the
// fused map in C order, or -1 when the map holds no number (NaN inputs), and its score.
typedef struct {
    int index;
    float score;
} mlk_sim_result;

// mlk_similarity_workspace returns the bytes of device workspace that mlk_similarity_search
// needs to handle chunk points at a time, or 0 when the scales or chunk are out of range.
size_t mlk_similarity_workspace(const mlk_sim_scale *scales, int nscales, int chunk);

// mlk_similarity_search enqueues on s the search of kernels.SimilaritySearch.Search for
// points points: features[i] and kernels[i] are the device addresses of scale i's raw query
// features [P][C][S^3] and template kernels [P][C][k^3] (float32, x fastest); out is the
// device address of points mlk_sim_result. The points are handled chunk at a time in the
// workspace (at least mlk_similarity_workspace bytes). scales, features and kernels are read
// during the call only.
int mlk_similarity_search(int dev, mlk_stream s, const mlk_sim_scale *scales, int nscales,
                          int patch, const uint64_t *features, const uint64_t *kernels,
                          int points, int chunk, uint64_t workspace, size_t workspace_bytes,
                          uint64_t out, mlk_status *st);

// mlk_similarity_search_batch is mlk_similarity_search between the copies in and out of a
// batch (mlk_copy): one call stages every scale's features and kernels in, searches and
// brings the results back.
int mlk_similarity_search_batch(int dev, mlk_stream s, const mlk_copy *in, int nin,
                                const mlk_copy *out_copies, int nout,
                                const mlk_sim_scale *scales, int nscales, int patch,
                                const uint64_t *features, const uint64_t *kernels, int points,
                                int chunk, uint64_t workspace, size_t workspace_bytes,
                                uint64_t out, mlk_status *st);

#ifdef __cplusplus
}
#endif

#endif // MEDLSAM_SIMILARITY_CUH
