// impl.h: the kernels of cpunet.h, written once with GCC vector extensions and compiled three
// times (avx512.c, avx2.c, generic.c), each after a "#pragma GCC target" and with SFX set to
// the suffix of its entry points. A vector (vf) is one register of the build: VL = 16 floats
// (ZMM) under AVX-512, 8 (YMM) under AVX2, 4 (XMM, or NEON elsewhere) in the baseline build.
// Channel strides stay multiples of 16, so every loop over channels steps by VL without a
// remainder. (Vectors wider than the target's registers must be avoided: GCC moves those
// through the stack in 8-byte pieces, which made an earlier 16-float-everywhere AVX2 build
// 26 times slower than AVX-512.)
//
// Winograd convolution: in one dimension (a correlation, as deep-learning convolutions
// are), F(n,3) computes n outputs y_o = sum_k g_k d_(o+k) of a 3-tap kernel g from n+2
// inputs d as y = A^T [(G g) .* (B^T d)]: n+2 multiplications where the direct form needs 3n.
// This file uses F(2,3) along z and F(4,3) along y and x (a tile of 2x4x4 outputs from 4x6x6
// inputs: 144 multiplications for 32 outputs, where the direct form needs 864):
//   F(2,3)  B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
//           A^T m = (m0 + m1 + m2, m1 - m2 - m3)
//   F(4,3)  B^T d = (4d0 - 5d2 + d4, -4d1 - 4d2 + d3 + d4, 4d1 - 4d2 - d3 + d4,
//                    -2d1 - d2 + 2d3 + d4, 2d1 - d2 - 2d3 + d4, 4d1 - 5d3 + d5)
//           A^T m = (m0 + m1 + m2 + m3 + m4, m1 - m2 + 2m3 - 2m4, m1 + m2 + 4m3 + 4m4,
//                    m1 - m2 + 8m3 - 8m4 + m5)
// (G, the kernel side, is applied once per model in Go: conv.go). Position
// p = (pz*6 + py)*6 + px of a tile's 144 transformed values multiplies, for every output
// channel, a sum over input channels: per position one matrix product [tiles x cin] x
// [cin x cout], done by the register tiles below.

#include "cpunet.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX2__)
#define VL 8
#else
#define VL 4
#endif
// W is the number of vectors per 16 channels.
#define W (16 / VL)

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4), may_alias));
typedef int vi __attribute__((vector_size(VL * 4)));

// Unaligned vector load and store, and the lane-wise maximum.
#define ld(p) ((vf)(*(const vfu *)(p)))
#define st(p, v) (*(vfu *)(p) = (v))
#define vmax(a, b)                                    \
	({                                                \
		const vf a_ = (a), b_ = (b);                  \
		const vi k_ = a_ > b_;                        \
		(vf)(((vi)a_ & k_) | ((vi)b_ & ~k_));         \
	})

// Register-tile heights (tiles per step) for panels of 16, 32, 48 and 64 channels, chosen so
// the accumulators (MR * NV * W registers) and the panel's row fit the register file: 32 ZMM,
// 16 YMM or 16 XMM.
#if defined(__AVX512F__)
enum { MR1 = 12, MR2 = 12, MR3 = 8, MR4 = 6 };
#elif defined(__AVX2__)
enum { MR1 = 6, MR2 = 3, MR3 = 2, MR4 = 1 };
#else
enum { MR1 = 2, MR2 = 1, MR3 = 1, MR4 = 1 };
#endif

// MICRO(NV, MR) defines micro_NV: c[i][0:16*NV] = sum over l < kc of a[i*lda + l] *
// b[l][0:16*NV] for i < MR, with b a packed [kc][16*NV] panel and c rows ldc apart.
#define MICRO(NV, MR)                                                                       \
	static inline void micro_##NV(int64_t kc, const float *a, int64_t lda, const float *b, \
		float *c, int64_t ldc) {                                                            \
		enum { NW = NV * W };                                                               \
		vf acc[MR][NW];                                                                     \
		_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                               \
			_Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) acc[i][j] = (vf){0};      \
		for (int64_t l = 0; l < kc; l++) {                                                  \
			vf bv[NW];                                                                      \
			_Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) bv[j] = ld(b + j * VL);   \
			_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                         \
				const float s = a[i * lda + l];                                             \
				_Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) acc[i][j] += bv[j] * s; \
			}                                                                               \
			b += 16 * NV;                                                                   \
		}                                                                                   \
		_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                               \
			_Pragma("GCC unroll 16") for (int j = 0; j < NW; j++)                           \
				st(c + i * ldc + j * VL, acc[i][j]);                                        \
	}

MICRO(1, MR1)
MICRO(2, MR2)
MICRO(3, MR3)
MICRO(4, MR4)

static int64_t micro_rows(int64_t nv) {
	switch (nv) {
	case 1: return MR1;
	case 2: return MR2;
	case 3: return MR3;
	}
	return MR4;
}

// bt6 applies F(4,3)'s B^T to the six vectors t[0], t[s], ..., t[5s] in place.
#define bt6(t, s)                                                                          \
	do {                                                                                   \
		const vf d0_ = (t)[0], d1_ = (t)[s], d2_ = (t)[2 * (s)], d3_ = (t)[3 * (s)];       \
		const vf d4_ = (t)[4 * (s)], d5_ = (t)[5 * (s)];                                   \
		const vf e_ = d4_ - 4 * d2_, f_ = d3_ - 4 * d1_, g_ = d4_ - d2_, h_ = 2 * (d3_ - d1_); \
		(t)[0] = 4 * d0_ - 5 * d2_ + d4_;                                                  \
		(t)[s] = e_ + f_;                                                                  \
		(t)[2 * (s)] = e_ - f_;                                                            \
		(t)[3 * (s)] = g_ + h_;                                                            \
		(t)[4 * (s)] = g_ - h_;                                                            \
		(t)[5 * (s)] = 4 * d1_ - 5 * d3_ + d5_;                                            \
	} while (0)

// input_tile writes plane pz of the transformed 4x6x6 input tile whose first voxel is
// (z0, y0, x0) (out of range voxels read as zero): positions pz*36 + q, q < 36, to
// v[q*vps + c] for the c < cp channels of src.
static void input_tile(const float *src, int64_t cp, int64_t d, int64_t h, int64_t w,
	int64_t z0, int64_t y0, int64_t x0, int pz, float *v, int64_t vps) {
	const float *row[24]; // (iz, iy) -> start of that input row, or 0 outside the grid
	unsigned okx = 0;
	for (int q = 0; q < 24; q++) {
		const int64_t z = z0 + q / 6, y = y0 + q % 6;
		row[q] = z >= 0 && z < d && y >= 0 && y < h ? src + (z * h + y) * w * cp : 0;
	}
	for (int ix = 0; ix < 6; ix++)
		if (x0 + ix >= 0 && x0 + ix < w) okx |= 1u << ix;
	int inside = okx == 63;
	for (int q = 0; q < 24; q++) inside = inside && row[q];
	// F(2,3)'s B^T along z first: output plane pz combines input planes za and zb as
	// pz 0: d0 - d2, 1: d1 + d2, 2: d2 - d1, 3: d1 - d3. Then x and y within the plane.
	static const int za[4] = {0, 1, 2, 1}, zb[4] = {2, 2, 1, 3};
	static const float sb[4] = {-1, 1, -1, -1};
	for (int64_t cb = 0; cb < cp; cb += VL) {
			vf s[36];
			if (inside) {
				_Pragma("GCC unroll 36") for (int q = 0; q < 36; q++) {
					const int64_t o = (x0 + q % 6) * cp + cb;
					s[q] = ld(row[za[pz] * 6 + q / 6] + o) + ld(row[zb[pz] * 6 + q / 6] + o) * sb[pz];
				}
			} else {
				for (int q = 0; q < 36; q++) {
					const int ix = q % 6;
					const float *ra = row[za[pz] * 6 + q / 6], *rb = row[zb[pz] * 6 + q / 6];
					const int64_t o = (x0 + ix) * cp + cb;
					const int okq = okx >> ix & 1;
					const vf a = ra && okq ? ld(ra + o) : (vf){0};
					const vf b = rb && okq ? ld(rb + o) : (vf){0};
					s[q] = a + b * sb[pz];
				}
			}
			_Pragma("GCC unroll 6") for (int iy = 0; iy < 6; iy++) bt6(s + 6 * iy, 1);
			_Pragma("GCC unroll 6") for (int ix = 0; ix < 6; ix++) bt6(s + ix, 6);
			_Pragma("GCC unroll 36") for (int q = 0; q < 36; q++)
				st(v + q * vps + cb, s[q]);
		}
}

// at6 applies F(4,3)'s A^T to the six vectors m[0], m[s], ..., m[5s], writing y[0], y[t],
// y[2t], y[3t].
#define at6(y, t, m, s)                                                                    \
	do {                                                                                   \
		const vf m1_ = (m)[s], m2_ = (m)[2 * (s)], m3_ = (m)[3 * (s)], m4_ = (m)[4 * (s)]; \
		const vf a_ = m1_ + m2_, b_ = m1_ - m2_, c_ = m3_ + m4_, e_ = m3_ - m4_;           \
		(y)[0] = (m)[0] + a_ + c_;                                                         \
		(y)[t] = b_ + 2 * e_;                                                              \
		(y)[2 * (t)] = a_ + 4 * c_;                                                        \
		(y)[3 * (t)] = b_ + 8 * e_ + (m)[5 * (s)];                                         \
	} while (0)

// The conv step runs one z plane of transformed positions (36 of the 144) at a time: its
// input transform, its 36 matrix products and its part of the output transform (F(4,3)'s
// A^T along y and x, then F(2,3)'s A^T along z as a weighted sum into an accumulator o), so
// that a chunk's buffers hold a quarter of its transformed values while each weight panel
// serves every tile of the chunk.
void FN(cpunet_conv)(const cpunet_conv_geom *g, const float *src1, const float *src2,
	const float *u, const float *bias, float *dst, float *v, float *m, double *stats,
	int64_t t0, int64_t t1) {
	enum { CH = CPUNET_CHUNK };
	// F(2,3)'s A^T: output plane oz takes az[oz][pz] times transformed plane pz.
	static const float az[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
	const int64_t cinp = g->cp1 + g->cp2, coutp = g->coutp, nrw = g->nrw;
	const int64_t nv = nrw / 16, nb = coutp / nrw, mr = micro_rows(nv);
	const int64_t d = g->d, h = g->h, w = g->w, th = h / 4, tw = w / 4;
	const int64_t vps = CH * cinp, mps = CH * coutp;
	const int64_t ncb = coutp / VL;
	float *o = m + 36 * mps; // [CH][32][coutp]: outputs (oz, oy, ox) of each tile
	vf sum[ncb];
	for (int64_t c0 = t0; c0 < t1; c0 += CH) {
		const int64_t n = t1 - c0 < CH ? t1 - c0 : CH;
		// Rows past n hold stale tiles (possibly not finite) whose products are never read.
		const int64_t rows = (n + mr - 1) / mr * mr;
		for (int pz = 0; pz < 4; pz++) {
			for (int64_t r = 0; r < n; r++) {
				const int64_t t = c0 + r, tz = t / (th * tw), ty = t / tw % th, tx = t % tw;
				input_tile(src1, g->cp1, d, h, w, 2 * tz - 1, 4 * ty - 1, 4 * tx - 1, pz,
					v + r * cinp, vps);
				if (g->cp2 > 0)
					input_tile(src2, g->cp2, d, h, w, 2 * tz - 1, 4 * ty - 1, 4 * tx - 1, pz,
						v + r * cinp + g->cp1, vps);
			}
			for (int64_t q = 0; q < 36; q++)
				for (int64_t jb = 0; jb < nb; jb++) {
					const float *bp = u + ((pz * 36 + q) * nb + jb) * cinp * nrw;
					for (int64_t i = 0; i < rows; i += mr) {
						const float *ap = v + q * vps + i * cinp;
						float *cp = m + q * mps + i * coutp + jb * nrw;
						switch (nv) {
						case 1: micro_1(cinp, ap, cinp, bp, cp, coutp); break;
						case 2: micro_2(cinp, ap, cinp, bp, cp, coutp); break;
						case 3: micro_3(cinp, ap, cinp, bp, cp, coutp); break;
						default: micro_4(cinp, ap, cinp, bp, cp, coutp); break;
						}
					}
				}
			for (int64_t r = 0; r < n; r++)
				for (int64_t cb = 0; cb < ncb; cb++) {
					const float *mp = m + r * coutp + cb * VL;
					float *op = o + r * 32 * coutp + cb * VL;
					vf a[36], b[24], y[16];
					_Pragma("GCC unroll 36") for (int q = 0; q < 36; q++) a[q] = ld(mp + q * mps);
					// Along x: a[py*6 + px] -> b[py*4 + ox]; along y: b -> y[oy*4 + ox].
					_Pragma("GCC unroll 6") for (int py = 0; py < 6; py++) at6(b + 4 * py, 1, a + 6 * py, 1);
					_Pragma("GCC unroll 4") for (int ox = 0; ox < 4; ox++) at6(y + ox, 4, b + ox, 4);
					for (int oz = 0; oz < 2; oz++) {
						const float c = az[oz][pz];
						if (pz == 0) {
							_Pragma("GCC unroll 16") for (int k = 0; k < 16; k++)
								st(op + (oz * 16 + k) * coutp, y[k] * c);
						} else if (c != 0) {
							_Pragma("GCC unroll 16") for (int k = 0; k < 16; k++) {
								float *p = op + (oz * 16 + k) * coutp;
								st(p, ld(p) + y[k] * c);
							}
						}
					}
				}
		}
		for (int64_t cb = 0; cb < ncb; cb++) sum[cb] = (vf){0};
		for (int64_t r = 0; r < n; r++) {
			const int64_t t = c0 + r, tz = t / (th * tw), ty = t / tw % th, tx = t % tw;
			for (int64_t cb = 0; cb < ncb; cb++) {
				const vf bv = ld(bias + cb * VL);
				const float *op = o + r * 32 * coutp + cb * VL;
				_Pragma("GCC unroll 32") for (int k = 0; k < 32; k++) {
					const int64_t z = 2 * tz + (k >> 4), yy = 4 * ty + ((k >> 2) & 3),
						      x = 4 * tx + (k & 3);
					const vf out = ld(op + k * coutp) + bv;
					st(dst + ((z * h + yy) * w + x) * coutp + cb * VL, out);
					sum[cb] += out;
				}
			}
		}
		for (int64_t cb = 0; cb < ncb; cb++)
			for (int j = 0; j < VL; j++) stats[cb * VL + j] += sum[cb][j];
	}
}

// cpunet_conv1 works on groups of at most 64 output channels, each group a full pass over
// the row, so any coutp fits the accumulators.
void FN(cpunet_conv1)(const float *src, int64_t d, int64_t h, int64_t w, const float *w27,
	const float *bias, int64_t coutp, float *dst, double *stats, int64_t z0, int64_t z1) {
	for (int64_t z = z0; z < z1; z++)
		for (int64_t y = 0; y < h; y++)
			for (int64_t c0 = 0; c0 < coutp; c0 += 64) {
				const int64_t nv = (coutp - c0 < 64 ? coutp - c0 : 64) / VL;
				vf sum[64 / VL] = {{0}};
				for (int64_t x = 0; x < w; x++) {
					vf acc[64 / VL];
					for (int64_t j = 0; j < nv; j++) acc[j] = ld(bias + c0 + j * VL);
					for (int kz = 0; kz < 3; kz++) {
						const int64_t zz = z + kz - 1;
						if (zz < 0 || zz >= d) continue;
						for (int ky = 0; ky < 3; ky++) {
							const int64_t yy = y + ky - 1;
							if (yy < 0 || yy >= h) continue;
							for (int kx = 0; kx < 3; kx++) {
								const int64_t xx = x + kx - 1;
								if (xx < 0 || xx >= w) continue;
								const float s = src[(zz * h + yy) * w + xx];
								const float *wp = w27 + ((kz * 3 + ky) * 3 + kx) * coutp + c0;
								for (int64_t j = 0; j < nv; j++) acc[j] += ld(wp + j * VL) * s;
							}
						}
					}
					float *o = dst + ((z * h + y) * w + x) * coutp + c0;
					for (int64_t j = 0; j < nv; j++) {
						st(o + j * VL, acc[j]);
						sum[j] += acc[j];
					}
				}
				for (int64_t j = 0; j < nv; j++)
					for (int k = 0; k < VL; k++) stats[c0 + j * VL + k] += sum[j][k];
			}
}

void FN(cpunet_norm_relu)(float *x, int64_t n, int64_t cp, const float *mean,
	const float *inv) {
	for (int64_t i = 0; i < n; i++)
		for (int64_t c = 0; c < cp; c += VL) {
			float *p = x + i * cp + c;
			st(p, vmax((ld(p) - ld(mean + c)) * ld(inv + c), (vf){0}));
		}
}

void FN(cpunet_sqdev)(const float *x, int64_t n, int64_t cp, const float *mean, double *out) {
	for (int64_t c = 0; c < cp; c += VL) {
		const vf m = ld(mean + c);
		vf acc = (vf){0};
		for (int64_t i = 0; i < n; i++) {
			const vf e = ld(x + i * cp + c) - m;
			acc += e * e;
		}
		for (int j = 0; j < VL; j++) out[c + j] += acc[j];
	}
}

void FN(cpunet_maxpool)(float *dst, const float *src, int64_t d, int64_t h, int64_t w,
	int64_t cp, int64_t z0, int64_t z1) {
	const int64_t ho = h / 2, wo = w / 2;
	(void)d;
	for (int64_t z = z0; z < z1; z++)
		for (int64_t y = 0; y < ho; y++)
			for (int64_t x = 0; x < wo; x++)
				for (int64_t c = 0; c < cp; c += VL) {
					const float *s = src + ((2 * z * h + 2 * y) * w + 2 * x) * cp + c;
					vf r = ld(s);
					for (int k = 1; k < 8; k++)
						r = vmax(r, ld(s + (((k >> 2) * h + ((k >> 1) & 1)) * w + (k & 1)) * cp));
					st(dst + ((z * ho + y) * wo + x) * cp + c, r);
				}
}

// up_taps gives output index o of a x2 half-pixel upsampling of n samples as two source
// indices and weights, as ONNX Runtime computes them: the source coordinate o/2 - 1/4,
// clamped to [0, n-1], between floor and floor+1 (clamped).
static inline void up_taps(int64_t o, int64_t n, int64_t *i0, int64_t *i1, float *w0,
	float *w1) {
	const int64_t i = o >> 1;
	if (o & 1) {
		*i0 = i;
		*i1 = i + 1 < n ? i + 1 : n - 1;
		*w0 = i + 1 < n ? 0.75f : 1.0f;
		*w1 = i + 1 < n ? 0.25f : 0.0f;
	} else if (i == 0) {
		*i0 = *i1 = 0;
		*w0 = 1.0f;
		*w1 = 0.0f;
	} else {
		*i0 = i - 1;
		*i1 = i;
		*w0 = 0.25f;
		*w1 = 0.75f;
	}
}

void FN(cpunet_upsample)(float *dst, const float *src, int64_t d, int64_t h, int64_t w,
	int64_t cp, int64_t z0, int64_t z1) {
	const int64_t ho = 2 * h, wo = 2 * w;
	for (int64_t z = z0; z < z1; z++) {
		int64_t zi[2];
		float zw[2];
		up_taps(z, d, &zi[0], &zi[1], &zw[0], &zw[1]);
		for (int64_t y = 0; y < ho; y++) {
			int64_t yi[2];
			float yw[2];
			up_taps(y, h, &yi[0], &yi[1], &yw[0], &yw[1]);
			for (int64_t x = 0; x < wo; x++) {
				int64_t xi[2];
				float xw[2];
				up_taps(x, w, &xi[0], &xi[1], &xw[0], &xw[1]);
				float *o = dst + ((z * ho + y) * wo + x) * cp;
				for (int64_t c = 0; c < cp; c += VL) {
					vf r = (vf){0};
					for (int k = 0; k < 8; k++) {
						const int a = k >> 2, b = (k >> 1) & 1, e = k & 1;
						const float wt = zw[a] * yw[b] * xw[e];
						r += ld(src + ((zi[a] * h + yi[b]) * w + xi[e]) * cp + c) * wt;
					}
					st(o + c, r);
				}
			}
		}
	}
}
