// precisionrecon: CPU (OpenMP) X-ray transform and its exact adjoint.
//
// Plain C ABI, no torch headers: the library compiles in seconds and works with any torch.
// The math (ray set-up, interpolation taps) comes from xray_math.h, shared with CUDA.
//
// Layout: each chunk of NB <= 16 images is copied once into a zero-padded, batch-last
// buffer (one SIMD lane per image, a one-voxel border so taps need no bounds checks).
// Forward: one ray per loop iteration; a single float32 image walks several rays at once,
// one SIMD lane each: 2-D (AVX2 and up) a view at a time in lane groups of 8 neighbouring
// rays with float offsets from a reference line (view_forward_2d), 3-D 8 neighbouring
// detector rows of a column (column_forward, bitwise equal to the one-ray loop). Adjoint:
// the same rays and weights (on AVX2 a whole view in the same lane groups in 2-D,
// view_adjoint_2d, and whole detector columns in a z-fastest copy in 3-D, column_adjoint);
// threads own disjoint slabs of slices along the current main axis, so no atomics and no
// per-thread copies are needed, and the summation order (and the result)
// does not depend on the number of threads.
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <atomic>
#include <new>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <type_traits>
#include <vector>

#include "xray_math.h"

namespace pr {
// Set by pr_set_cancel(1) from another thread (Python, on Ctrl-C): the back-projections
// (this file's adjoint, vbp_cpu.cpp's back-projection) stop at their next block of views or
// image row and return kCancelled with an unfinished output, which the caller discards.
std::atomic<int> g_cancel{0};
constexpr int kCancelled = 98;
}  // namespace pr

#ifndef PR_ISA_SUFFIX
#define PR_ISA_SUFFIX
#endif
#define PR_CAT2(a, b) a##b
#define PR_CAT(a, b) PR_CAT2(a, b)
#define PR_EXPORT(name) PR_CAT(name, PR_ISA_SUFFIX)

namespace {

using pr::Detector;
using pr::Line;
using pr::Volume;

constexpr int64_t kMaxTableRays = 1 << 19;  // rays per block of the adjoint's ray table
constexpr int kBlock = 64;                  // slices whose taps are computed together (SIMD)
constexpr int64_t kSlack = 64;              // spare elements after a forward buffer (window loads)

// NB images side by side as one SIMD value (GCC/Clang vector extension); NB = 1 is scalar.
template <typename T, int NB>
struct LanesImpl {
  typedef T type __attribute__((vector_size(sizeof(T) * NB)));
};
template <typename T, int NB>
using Lanes = typename std::conditional<NB == 1, T, typename LanesImpl<T, NB == 1 ? 2 : NB>::type>::type;

template <typename V, typename T>
inline V load_lanes(const T* p) {
  V v;
  memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store_lanes(T* p, const V& v) {
  memcpy(p, &v, sizeof(V));
}

// Taps of slices [jb, jb + cnt) of one ray, computed in a vectorisable loop: the element
// offset of the first voxel and the (bi)linear weights. ray_line() makes every slice of
// the line's range a valid sample, so the loop has no masks.
template <typename T, int DIM, typename OFF>
struct Taps {
  alignas(64) OFF off[kBlock];  // element offsets from the first interior voxel (exact integers)
  // weights: 2-D interleaved (c0, c1) pairs, 3-D four planes c[t][k]
  alignas(64) T c[DIM == 2 ? 1 : 4][DIM == 2 ? 2 * kBlock : kBlock];

  inline T w(int tap, int k) const { return DIM == 2 ? c[0][2 * k + tap] : c[DIM == 2 ? 0 : tap][k]; }

  inline void compute(const Line& line, const Volume& volume, int jb, int cnt, int64_t sm, int64_t s1, int64_t s2) {
    const Line L = line;  // local copies: provably not aliased by the outputs
    const Volume vol = volume;
    const double smd = (double)sm, s1d = (double)s1, s2d = (double)s2;
    OFF* __restrict o_ = off;
    T* __restrict c0_ = c[0];
    T* __restrict c1_ = c[DIM == 2 ? 0 : 1];
    T* __restrict c2_ = c[DIM == 3 ? 2 : 0];
    T* __restrict c3_ = c[DIM == 3 ? 3 : 0];
#pragma omp simd
    for (int k = 0; k < cnt; ++k) {
      const double j = (double)(jb + k);
      const pr::Sample sa = pr::joseph_sample<DIM>(L, vol, j);
      o_[k] = (OFF)(j * smd + sa.fl1 * s1d + sa.fl2 * s2d);
      if (DIM == 2) {
        c0_[2 * k] = (T)sa.c0;
        c1_[2 * k + 1] = (T)sa.c1;
      } else {
        c0_[k] = (T)sa.c0;
        c1_[k] = (T)sa.c1;
        c2_[k] = (T)sa.c2;
        c3_[k] = (T)sa.c3;
      }
    }
  }
};

// Zero-padded, batch-last copies of a volume. 2-D keeps two layouts: rays whose main axis
// is x read a transposed copy, so that in both the two interpolation taps of a sample are
// neighbours in memory (one 2-lane load or update). 3-D keeps one layout: x fastest, or z
// fastest for the grouped-rows forward projection (column_forward).
struct Padded {
  int64_t stride[3];  // voxel strides of the padded volume per axis x, y, z
  int64_t size;       // voxels in the padded volume
  int64_t base;       // padded index of voxel (0, 0, 0)
};

template <int DIM>
Padded padded_layout(const Volume& vol, int fastest) {
  Padded p;
  const int64_t nx = vol.n[0] + 2, ny = vol.n[1] + 2, nz = DIM == 3 ? vol.n[2] + 2 : 1;
  if (fastest == 2) {  // 3-D: z fastest, then y, then x
    p.stride[2] = 1;
    p.stride[1] = nz;
    p.stride[0] = nz * ny;
  } else if (fastest == 0) {
    p.stride[0] = 1;
    p.stride[1] = nx;
    p.stride[2] = nx * ny;
  } else {
    p.stride[1] = 1;
    p.stride[0] = ny;
    p.stride[2] = nx * ny;
  }
  p.size = nx * ny * nz;
  p.base = p.stride[0] + p.stride[1] + (DIM == 3 ? p.stride[2] : 0);
  return p;
}

// Whether element offsets into a buffer of `elements` fit int32 (cheaper to convert and
// load than doubles: measured 12 % faster for 8 images on AVX-512, Zen 4).
inline bool fits_int32(int64_t elements) { return elements < (int64_t)1 << 31; }

// Number of layouts and the layout a ray with main axis m reads.
template <int DIM>
constexpr int n_layouts() { return DIM == 2 ? 2 : 1; }
template <int DIM>
inline int layout_of(int m) { return DIM == 2 ? m : 0; }
template <int DIM>
inline int fastest_axis(int layout, bool z_fastest) { return DIM == 2 ? (layout == 0 ? 1 : 0) : (z_fastest ? 2 : 0); }

// Whether the 3-D projections of NB images of type T walk detector columns in groups of rows
// (column_forward and column_adjoint, AVX2 float32 single images) in the z-fastest layout.
template <typename T, int DIM, int NB>
constexpr bool rows_path() {
#if defined(__AVX2__)
  return DIM == 3 && NB == 1 && std::is_same<T, float>::value;
#else
  return false;
#endif
}

// Copy images [b0, b0 + nb) of x (batch, [nz,] ny, nx) into (or, with `add`, out of) the
// padded batch-last buffer `buf` of layout p.
template <typename T, int DIM, int NB>
void copy_padded(bool to_buffer, bool add, T* x, int64_t nvox, const Volume& vol, const Padded& p, int b0, int nb,
                 T* buf, int nthreads) {
  const int nx = vol.n[0], ny = vol.n[1], nz = DIM == 3 ? vol.n[2] : 1;
  if (DIM == 3 && p.stride[2] == 1) {
    // z-fastest layout: tiles of 16 x-neighbours, so that reads are contiguous along x and
    // the writes are 16 streams along z
    constexpr int kTile = 16;
    const int ntiles = (nx + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nthreads)
    for (int tx = 0; tx < ntiles; ++tx)
      for (int iy = 0; iy < ny; ++iy) {
        const int x0 = tx * kTile, x1 = x0 + kTile < nx ? x0 + kTile : nx;
        for (int b = 0; b < nb; ++b) {
          T* img = x + (int64_t)(b0 + b) * nvox + (int64_t)iy * nx;
          T* pad = buf + (p.base + iy * p.stride[1]) * NB + b;
          for (int iz = 0; iz < nz; ++iz) {
            T* irow = img + (int64_t)iz * ny * nx;
            T* pcol = pad + (int64_t)iz * NB;
            for (int ix = x0; ix < x1; ++ix) {
              T& v = pcol[ix * p.stride[0] * NB];
              if (to_buffer)
                v = irow[ix];
              else if (add)
                irow[ix] += v;
              else
                irow[ix] = v;
            }
          }
        }
      }
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) num_threads(nthreads)
  for (int iz = 0; iz < nz; ++iz)
    for (int iy = 0; iy < ny; ++iy) {
      const int64_t row = ((int64_t)iz * ny + iy) * nx;
      const int64_t prow = p.base + iy * p.stride[1] + (DIM == 3 ? iz * p.stride[2] : 0);
      for (int b = 0; b < nb; ++b) {
        T* img = x + (int64_t)(b0 + b) * nvox + row;
        T* pad = buf + prow * NB + b;
        const int64_t st = p.stride[0] * NB;
        if (to_buffer)
          for (int ix = 0; ix < nx; ++ix) pad[ix * st] = img[ix];
        else if (add)
          for (int ix = 0; ix < nx; ++ix) img[ix] += pad[ix * st];
        else
          for (int ix = 0; ix < nx; ++ix) img[ix] = pad[ix * st];
      }
    }
}

// Forward projection of ray (iu, iv) of one view: out[b] for the NB images of the chunk.
template <typename T, int DIM, int NB, typename OFF>
inline void ray_forward(const T* const* bufs, const Padded* lay, const Volume& vol, const double* vec,
                        const Detector& det, int iu, int iv, T* out) {
  using V = Lanes<T, NB>;
  using V2 = Lanes<T, 2>;
  V acc0 = V{} * T(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  V2 pair0 = V2{} * T(0), pair1 = pair0;
  Line L;
  if (pr::ray_line<DIM>(vec, vol, det, iu, iv, L)) {
    const int li = layout_of<DIM>(L.m);
    const Padded& p = lay[li];
    const T* buf = bufs[li] + p.base * NB;
    const int64_t sm = p.stride[L.m] * NB, s1 = p.stride[L.o1] * NB;
    const int64_t s2 = DIM == 3 ? p.stride[L.o2] * NB : 0;
    Taps<T, DIM, OFF> tp;
    for (int jb = L.j0; jb < L.j1; jb += kBlock) {
      const int cnt = L.j1 - jb < kBlock ? L.j1 - jb : kBlock;
      tp.compute(L, vol, jb, cnt, sm, s1, s2);
      if constexpr (DIM == 2 && NB == 1) {
        // one image: the two taps are adjacent, one 2-lane load per sample
        int k = 0;
        for (; k + 1 < cnt; k += 2) {
          pair0 += load_lanes<V2>(tp.c[0] + 2 * k) * load_lanes<V2>(buf + (int64_t)tp.off[k]);
          pair1 += load_lanes<V2>(tp.c[0] + 2 * k + 2) * load_lanes<V2>(buf + (int64_t)tp.off[k + 1]);
        }
        if (k < cnt) pair0 += load_lanes<V2>(tp.c[0] + 2 * k) * load_lanes<V2>(buf + (int64_t)tp.off[k]);
      } else if constexpr (DIM == 2) {
        // the same sums as the one-image path, lane by lane: even and odd samples,
        // first and second tap, so a result does not depend on the batch size
        int k = 0;
        for (; k + 1 < cnt; k += 2) {
          const T* q0 = buf + (int64_t)tp.off[k];
          const T* q1 = buf + (int64_t)tp.off[k + 1];
          acc0 += tp.w(0, k) * load_lanes<V>(q0);
          acc1 += tp.w(1, k) * load_lanes<V>(q0 + s1);
          acc2 += tp.w(0, k + 1) * load_lanes<V>(q1);
          acc3 += tp.w(1, k + 1) * load_lanes<V>(q1 + s1);
        }
        if (k < cnt) {
          const T* q0 = buf + (int64_t)tp.off[k];
          acc0 += tp.w(0, k) * load_lanes<V>(q0);
          acc1 += tp.w(1, k) * load_lanes<V>(q0 + s1);
        }
      } else {
        // two independent partial sums hide the latency of the additions
        const auto term = [&](int k) {
          const T* q = buf + (int64_t)tp.off[k];
          V t = tp.w(0, k) * load_lanes<V>(q) + tp.w(1, k) * load_lanes<V>(q + s1);
          if (DIM == 3) t += tp.w(2, k) * load_lanes<V>(q + s2) + tp.w(3, k) * load_lanes<V>(q + s1 + s2);
          return t;
        };
        int k = 0;
        for (; k + 1 < cnt; k += 2) {
          acc0 += term(k);
          acc1 += term(k + 1);
        }
        if (k < cnt) acc0 += term(k);
      }
    }
  }
  if constexpr (DIM == 2 && NB == 1) {
    const V2 pair = pair0 + pair1;
    out[0] = pair[0] + pair[1];
  } else if constexpr (DIM == 2) {
    store_lanes(out, (acc0 + acc2) + (acc1 + acc3));
  } else {
    store_lanes(out, acc0 + acc1);
  }
}


#if defined(__AVX2__)
constexpr int kRows = 8;

// The window start of kRows lanes: the smallest tap index fi of the lanes with a sample (ok),
// broadcast to every lane; 1 << 30 when no lane has one.
inline __m256i window_start(__m256i fiv, __m256i ok) {
  __m256i lo = _mm256_blendv_epi8(_mm256_set1_epi32(1 << 30), fiv, ok);
  lo = _mm256_min_epi32(lo, _mm256_permute2x128_si256(lo, lo, 1));
  lo = _mm256_min_epi32(lo, _mm256_shuffle_epi32(lo, 0x4e));
  return _mm256_min_epi32(lo, _mm256_shuffle_epi32(lo, 0xb1));
}

// Each lane's two taps q[z0 + rel] and q[z0 + rel + 1] (rel >= 0, 0 in lanes without a
// sample): when every rel <= 14 they lie in the 16 voxels from q + z0, read by two loads and
// permutes; else by gathers.
// Each lane's taps w[rel] and w[rel + 1] of the 16 voxels from w (0 <= rel <= 14).
inline void window_taps(const float* w, __m256i rel, __m256& x0, __m256& x1) {
  const __m256i rel1 = _mm256_add_epi32(rel, _mm256_set1_epi32(1));
  const __m256 hi0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(rel, _mm256_set1_epi32(7)));
  const __m256 hi1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(rel1, _mm256_set1_epi32(7)));
  const __m256 w_lo = _mm256_loadu_ps(w), w_hi = _mm256_loadu_ps(w + 8);
  x0 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(w_lo, rel), _mm256_permutevar8x32_ps(w_hi, rel), hi0);
  x1 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(w_lo, rel1), _mm256_permutevar8x32_ps(w_hi, rel1), hi1);
}

inline void lane_taps(const float* q, int z0, __m256i rel, __m256& x0, __m256& x1) {
  if (__builtin_expect(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(rel, _mm256_set1_epi32(14)))) == 0,
                       1)) {
    window_taps(q + z0, rel, x0, x1);
  } else {
    const __m256i idx = _mm256_add_epi32(rel, _mm256_set1_epi32(z0));
    x0 = _mm256_i32gather_ps(q, idx, 4);
    x1 = _mm256_i32gather_ps(q + 1, idx, 4);
  }
}

// kRows neighbouring 2-D rays of one view as SIMD lanes (one float32 image): each lane's
// line a1 + b1 j (along o1, in voxels) is split into a reference line A + B j, evaluated in
// double once per slice for all lanes, and the lane's small float offset alpha + beta j, so
// that the weights of 8 rays cost one floor and a few float operations per slice instead of
// the double-precision Joseph sample of every ray. The offsets are rounded to float (their
// size is a few voxels: an error of about 1e-6 voxel in a tap position), below the float32
// rounding of the sums. view_forward_2d and view_adjoint_2d both take their weights from
// lane_weights_2d, so the back-projection stays the exact transpose of this forward.
struct LaneGroup2d {
  double A = 0.0, B = 0.0;  // the reference line (the first lane with samples)
  __m256 alpha, beta, w;    // per lane: a1 - A, b1 - B, ray length per slice (0 in lanes off)
  __m256i j0, j1;           // per lane: the slices [j0, j1) with a sample (empty in lanes off)
  __m256 y;                 // view_adjoint_2d: the rays' values
  int m = -1;               // shared main axis (-1: no lane has a sample)
  int jlo = 0, jhi = 0;     // the union of the lanes' slices
  // fixed: at every slice the taps of the lanes with a sample lie in the 16 voxels from
  // fb + wlo, with fb = floor(A + B j) (lanes_taps_fixed); else they are found per slice
  int wlo = 0;
  bool fixed = false;
};

// Group the lines of kRows rays (on[l]: ray l exists and has samples). False when the rays
// with samples do not share their main axis; then the callers take them one by one.
__attribute__((noinline)) bool make_lane_group(const Line* lines, const bool* on, LaneGroup2d& G) {
  alignas(32) float alpha[kRows], beta[kRows], w[kRows];
  alignas(32) int j0[kRows], j1[kRows];
  G.m = -1;
  G.jlo = 1 << 30;
  G.jhi = -1;
  int ref = -1;
  for (int l = 0; l < kRows; ++l) {
    if (on[l] && ref < 0) ref = l;
    if (on[l] && lines[l].m != lines[ref].m) return false;
  }
  if (ref >= 0) {
    G.m = lines[ref].m;
    G.A = lines[ref].a1;
    G.B = lines[ref].b1;
  }
  for (int l = 0; l < kRows; ++l) {
    const Line& L = lines[l];
    alpha[l] = on[l] ? (float)(L.a1 - G.A) : 0.0f;
    beta[l] = on[l] ? (float)(L.b1 - G.B) : 0.0f;
    w[l] = on[l] ? (float)L.w : 0.0f;
    j0[l] = on[l] ? L.j0 : 0;
    j1[l] = on[l] ? L.j1 : 0;
    if (on[l]) {
      G.jlo = L.j0 < G.jlo ? L.j0 : G.jlo;
      G.jhi = L.j1 > G.jhi ? L.j1 : G.jhi;
    }
  }
  // the lanes' offsets over [jlo, jhi) lie between their values at the two ends (linear in j)
  double dlo = 1e300, dhi = -1e300;
  for (int l = 0; l < kRows; ++l)
    for (int e = 0; e < 2 && on[l]; ++e) {
      const double d = (double)alpha[l] + (double)beta[l] * (double)(e == 0 ? G.jlo : G.jhi - 1);
      dlo = d < dlo ? d : dlo;
      dhi = d > dhi ? d : dhi;
    }
  // floor(offset + frac) lies in [floor(dlo), floor(dhi) + 1]; one voxel of margin on each
  // side for float rounding, and the second tap: rel <= 13 + 1 < 16
  G.fixed = ref >= 0 && dhi - dlo < 8.0 * kRows && floor(dhi) - floor(dlo) + 3.0 <= 13.0;
  G.wlo = G.fixed ? (int)floor(dlo) - 1 : 0;
  G.alpha = _mm256_load_ps(alpha);
  G.beta = _mm256_load_ps(beta);
  G.w = _mm256_load_ps(w);
  G.j0 = _mm256_load_si256((const __m256i*)j0);
  G.j1 = _mm256_load_si256((const __m256i*)j1);
  return true;
}

// Joseph weights of a lane group at slice j: taps c0 at voxel fi and c1 at fi + 1 along o1
// (n1 voxels), ok = the lanes with a sample at j (j0 <= j < j1); lanes off get zero weights.
// fi is clamped to [-1, n1 - 1], the taps the padded layout holds (a float offset can move a
// tap position that lies within 1e-6 of the border across it).
inline void lane_weights_2d(const LaneGroup2d& G, int j, int n1, __m256& c0, __m256& c1, __m256i& fi, __m256i& ok) {
  const double f = G.A + G.B * (double)j;
  const double fb = floor(f);
  const __m256 g = _mm256_add_ps(_mm256_add_ps(G.alpha, _mm256_mul_ps(G.beta, _mm256_set1_ps((float)j))),
                                 _mm256_set1_ps((float)(f - fb)));
  const __m256 fl = _mm256_floor_ps(g);
  const __m256 t = _mm256_sub_ps(g, fl);
  const __m256i vj = _mm256_set1_epi32(j);
  ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(G.j0, vj), _mm256_cmpgt_epi32(G.j1, vj));
  fi = _mm256_add_epi32(_mm256_cvttps_epi32(fl), _mm256_set1_epi32((int)fb));
  fi = _mm256_min_epi32(_mm256_max_epi32(fi, _mm256_set1_epi32(-1)), _mm256_set1_epi32(n1 - 1));
  const __m256 wok = _mm256_and_ps(G.w, _mm256_castsi256_ps(ok));
  c1 = _mm256_mul_ps(wok, t);
  c0 = _mm256_sub_ps(wok, c1);
}

// The Joseph weights of the rays of a detector column at slice j, split into their two
// factors: the in-plane line R (main axis, o1) that all rows share, with weights 1 - t1 at
// fl1 and t1 at fl1 + 1 (inplane_3d), and per lane of row group g the weights w0 at fi and
// w1 at fi + 1 along o2 (z_weights_3d: the rows' lines along o2 as a reference line A + B j
// plus float offsets, as in LaneGroup2d; fi clamped to [-1, n2 - 1], the padded layout's
// taps). A sample is w0 ((1 - t1) x(fl1, fi) + t1 x(fl1 + 1, fi)) + w1 (...(fi + 1)); a
// voxel's weight is one product of the two factors in both column_forward and
// column_adjoint, so the adjoint is the exact transpose.
inline double inplane_3d(const Line& R, int j, __m256& u1, __m256& t1) {
  const double f1 = R.a1 + R.b1 * (double)j;
  const double fl1 = floor(f1), t = f1 - fl1;
  u1 = _mm256_set1_ps((float)(1.0 - t));
  t1 = _mm256_set1_ps((float)t);
  return fl1;
}
inline void z_weights_3d(const struct ColumnScratch& cs, int g, int j, int n2, __m256& w0, __m256& w1, __m256i& fi);

// Per-thread scratch of column_forward: the rays of one detector column, kRows lanes per group.
struct ColumnScratch {
  std::vector<double> a2, b2, w;
  std::vector<int> j0, j1, glo, ghi;  // per lane slices [j0, j1); per group their union [glo, ghi)
  std::vector<float> acc;             // per group: kRows even-sample sums, then kRows odd-sample sums
  std::vector<float> y;               // column_adjoint: the rays' values
  std::vector<char> on;               // per lane: the ray exists and has samples (unclipped)
  std::vector<float> alpha, beta, wf;  // per lane: a2 - A, b2 - B of its group, w (make_offsets)
  std::vector<double> gA, gB;         // per group: the reference line A + B j (its first lane on)
  std::vector<int> wlo;               // per group: the fixed window's start from floor(A + B j),
  std::vector<char> fixed;            // when the lanes' taps always fit in 16 voxels
  std::vector<float> profile;         // column_adjoint: a slice's z-profile
  std::vector<LaneGroup2d> groups2d;  // view_adjoint_2d: the lane groups of a view
  int jlo = 0, jhi = 0;               // the union of all lanes' slices

  // Size the lanes of `groups` groups of kRows; every slice range empty.
  void reset(int groups) {
    const int lanes = groups * kRows;
    a2.resize(lanes);
    b2.resize(lanes);
    w.resize(lanes);
    j0.resize(lanes);
    j1.resize(lanes);
    y.resize(lanes);
    on.assign(lanes, 0);
    glo.assign(groups, 1 << 30);
    ghi.assign(groups, -1);
    jlo = 1 << 30;
    jhi = -1;
  }
  // Lane v samples slices [a, b): widen its group's range and the union (empty ranges ignored).
  void add_range(int v, int a, int b) {
    if (a >= b) return;
    int& g0 = glo[v / kRows];
    int& g1 = ghi[v / kRows];
    g0 = a < g0 ? a : g0;
    g1 = b > g1 ? b : g1;
    jlo = a < jlo ? a : jlo;
    jhi = b > jhi ? b : jhi;
  }
  // The float offsets of the lanes from their group's reference line (after a2, b2, w, on).
  void make_offsets(int groups) {
    alpha.resize(groups * kRows);
    beta.resize(groups * kRows);
    wf.resize(groups * kRows);
    gA.assign(groups, 0.0);
    gB.assign(groups, 0.0);
    wlo.assign(groups, 0);
    fixed.assign(groups, 0);
    for (int g = 0; g < groups; ++g) {
      int ref = -1;
      for (int l = g * kRows; l < (g + 1) * kRows && ref < 0; ++l)
        if (on[l]) ref = l;
      if (ref >= 0) {
        gA[g] = a2[ref];
        gB[g] = b2[ref];
      }
      for (int l = g * kRows; l < (g + 1) * kRows; ++l) {
        alpha[l] = on[l] ? (float)(a2[l] - gA[g]) : 0.0f;
        beta[l] = on[l] ? (float)(b2[l] - gB[g]) : 0.0f;
        wf[l] = on[l] ? (float)w[l] : 0.0f;
      }
      // as LaneGroup2d: the offsets are linear in j, so they lie between their values at the
      // ends of the lanes' slices; a voxel of margin on each side
      double dlo = 1e300, dhi = -1e300;
      for (int l = g * kRows; l < (g + 1) * kRows; ++l)
        for (int e = 0; e < 2 && on[l] && j1[l] > j0[l]; ++e) {
          const double d = (double)alpha[l] + (double)beta[l] * (double)(e == 0 ? j0[l] : j1[l] - 1);
          dlo = d < dlo ? d : dlo;
          dhi = d > dhi ? d : dhi;
        }
      fixed[g] = ref >= 0 && dhi >= dlo && dhi - dlo < 64.0 && floor(dhi) - floor(dlo) + 3.0 <= 13.0;
      wlo[g] = fixed[g] ? (int)floor(dlo) - 1 : 0;
    }
  }
  // Lane v of an adjoint: the line a + b j of its taps' axis, its weight and value, and its
  // slices [first, last) clipped to [lo, hi); a lane that is off gets zeros and no slices.
  void set_adjoint_lane(int v, bool on, double a, double b, double weight, float value, int first, int last, int lo,
                        int hi) {
    const int s0 = on ? (first > lo ? first : lo) : 0, s1 = on ? (last < hi ? last : hi) : 0;
    this->on[v] = on;
    a2[v] = on ? a : 0.0;
    b2[v] = on ? b : 0.0;
    w[v] = on ? weight : 0.0;
    j0[v] = s0;
    j1[v] = s1;
    y[v] = on ? value : 0.0f;
    add_range(v, s0, s1);
  }
};

inline void z_weights_3d(const ColumnScratch& cs, int g, int j, int n2, __m256& w0, __m256& w1, __m256i& fi) {
  const int l0 = g * kRows;
  const double f = cs.gA[g] + cs.gB[g] * (double)j;
  const double fb = floor(f);
  const __m256 gz = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(&cs.alpha[l0]),
                                                _mm256_mul_ps(_mm256_loadu_ps(&cs.beta[l0]), _mm256_set1_ps((float)j))),
                                  _mm256_set1_ps((float)(f - fb)));
  const __m256 fl = _mm256_floor_ps(gz);
  const __m256 t2 = _mm256_sub_ps(gz, fl);
  fi = _mm256_add_epi32(_mm256_cvttps_epi32(fl), _mm256_set1_epi32((int)fb));
  fi = _mm256_min_epi32(_mm256_max_epi32(fi, _mm256_set1_epi32(-1)), _mm256_set1_epi32(n2 - 1));
  const __m256 w = _mm256_loadu_ps(&cs.wf[l0]);
  w1 = _mm256_mul_ps(w, t2);
  w0 = _mm256_sub_ps(w, w1);
}

// 3-D, one float32 volume in the z-fastest layout: the rays of one detector column (iu) as
// groups of kRows neighbouring rows, one SIMD lane per ray. When all its rays share the main
// axis and the in-plane line (a cone beam with detector v along z: every row of a column has
// the same x, y path), every lane's four taps at slice j lie in the same two z-columns of the
// volume, read through 16-voxel windows (or 8-lane gathers). Slices are the outer loop and the
// groups the inner one, so those two z-columns are read from L1 by all groups (group-major
// order missed the caches on these loads). The weights are inplane_3d's and z_weights_3d's;
// a group whose rows' taps always fit in 16 voxels (fixed) finds its window from the scalar
// reference line. Returns false (and leaves the rays to ray_forward) otherwise.
inline bool column_forward(const float* buf0, const Padded& p, const Volume& volume, const double* vec,
                           const Detector& det, int iu, float* out, int64_t out_stride, ColumnScratch& cs) {
  const int nv = det.nv, groups = (nv + kRows - 1) / kRows, lanes = groups * kRows;
  cs.reset(groups);
  cs.acc.assign(lanes, 0.0f);
  Line R{};
  int ref = -1;
  for (int v = 0; v < lanes; ++v) {
    Line L;
    const bool hit = v < nv && pr::ray_line<3>(vec, volume, det, iu, v, L);
    if (hit) {
      if (ref < 0) {
        ref = v;
        R = L;
      }
      if (L.m != R.m || L.a1 != R.a1 || L.b1 != R.b1) return false;
      cs.add_range(v, L.j0, L.j1);
    }
    cs.on[v] = hit;
    cs.a2[v] = hit ? L.a2 : 0.0;
    cs.b2[v] = hit ? L.b2 : 0.0;
    cs.w[v] = hit ? L.w : 0.0;
    cs.j0[v] = hit ? L.j0 : 0;
    cs.j1[v] = hit ? L.j1 : 0;
  }
  if (ref >= 0 && p.stride[R.o2] != 1) return false;
  cs.make_offsets(groups);
  const int n2 = ref >= 0 ? volume.n[R.o2] : 0;
  const int64_t sm = ref >= 0 ? p.stride[R.m] : 0, s1 = ref >= 0 ? p.stride[R.o1] : 0;
  for (int j = cs.jlo; j < cs.jhi; ++j) {
    const __m256i vj = _mm256_set1_epi32(j);
    __m256 u1, t1;
    const double fl1 = inplane_3d(R, j, u1, t1);
    for (int g = 0; g < groups; ++g) {
      if (j < cs.glo[g] || j >= cs.ghi[g]) continue;
      const int l0 = g * kRows;
      __m256 w0, w1;
      __m256i fiv;
      z_weights_3d(cs, g, j, n2, w0, w1, fiv);
      const __m256i vj0 = _mm256_loadu_si256((const __m256i*)&cs.j0[l0]);
      const __m256i vj1 = _mm256_loadu_si256((const __m256i*)&cs.j1[l0]);
      // lanes with j0 <= j < j1 have a sample (their taps are in the volume or its border)
      const __m256i ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(vj0, vj), _mm256_cmpgt_epi32(vj1, vj));
      const __m256 okf = _mm256_castsi256_ps(ok);
      if (_mm256_movemask_ps(okf) == 0) continue;  // no lane has a sample at this slice
      const float* qa = buf0 + j * sm + (int64_t)fl1 * s1;
      __m256 x0, x1, x2, x3;
      if (cs.fixed[g]) {
        // window start from the scalar reference line, clamped into the z-column (a lane with
        // a sample has its taps in [-1, n2])
        int z0 = (int)floor(cs.gA[g] + cs.gB[g] * (double)j) + cs.wlo[g];
        z0 = z0 < -1 ? -1 : (z0 > n2 - 1 ? n2 - 1 : z0);
        const __m256i rel = _mm256_and_si256(_mm256_sub_epi32(fiv, _mm256_set1_epi32(z0)), ok);
        window_taps(qa + z0, rel, x0, x2);       // the z-column at fl1
        window_taps(qa + s1 + z0, rel, x1, x3);  // and at fl1 + 1
      } else {
        const __m256i lo = window_start(fiv, ok);
        const int z0 = _mm256_cvtsi256_si32(lo);
        const __m256i rel = _mm256_and_si256(_mm256_sub_epi32(fiv, lo), ok);  // 0 for lanes off
        lane_taps(qa, z0, rel, x0, x2);
        lane_taps(qa + s1, z0, rel, x1, x3);
      }
      const __m256 t = _mm256_add_ps(_mm256_mul_ps(w0, _mm256_add_ps(_mm256_mul_ps(u1, x0), _mm256_mul_ps(t1, x1))),
                                     _mm256_mul_ps(w1, _mm256_add_ps(_mm256_mul_ps(u1, x2), _mm256_mul_ps(t1, x3))));
      float* acc = &cs.acc[l0];
      _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), _mm256_and_ps(t, okf)));
    }
  }
  for (int v = 0; v < nv; ++v) out[v * out_stride] = cs.acc[v];
  return true;
}
#endif

#if defined(__AVX2__)
// The sums over slices [a, b) of a lane group's samples (view_forward_2d); a function of its
// own, so that the register allocation of this loop does not depend on its caller.
__attribute__((noinline)) __m256 slab_forward_2d(const LaneGroup2d& G, int a, int b, const float* buf, int64_t sm,
                                                 int n1) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  const __m256 zero = _mm256_setzero_ps();
  const auto add = [&](int j, const __m256& c0, const __m256& c1, const __m256i& ok, const __m256& x0,
                       const __m256& x1) {
    // lanes off add exactly 0 (their window voxels may hold inf or nan)
    const __m256 okf = _mm256_castsi256_ps(ok);
    acc0 = _mm256_add_ps(acc0, _mm256_and_ps(_mm256_mul_ps(c0, x0), okf));
    acc1 = _mm256_add_ps(acc1, _mm256_and_ps(_mm256_mul_ps(c1, x1), okf));
  };
  if (G.fixed) {
    for (int j = a; j < b; ++j) {
      __m256 c0, c1;
      __m256i fiv, ok;
      lane_weights_2d(G, j, n1, c0, c1, fiv, ok);
      // window start from the scalar reference line (clamped into the row: a lane with a
      // sample has its taps in [-1, n1])
      int z0 = (int)floor(G.A + G.B * (double)j) + G.wlo;
      z0 = z0 < -1 ? -1 : (z0 > n1 - 1 ? n1 - 1 : z0);
      const __m256i rel = _mm256_and_si256(_mm256_sub_epi32(fiv, _mm256_set1_epi32(z0)), ok);
      __m256 x0, x1;
      window_taps(buf + j * sm + z0, rel, x0, x1);
      add(j, c0, c1, ok, x0, x1);
    }
  } else {
    for (int j = a; j < b; ++j) {
      __m256 c0, c1;
      __m256i fiv, ok;
      lane_weights_2d(G, j, n1, c0, c1, fiv, ok);
      const __m256i lo = window_start(fiv, ok);
      const int z0 = _mm256_cvtsi256_si32(lo);
      if (__builtin_expect(z0 == 1 << 30, 0)) continue;
      const __m256i rel = _mm256_and_si256(_mm256_sub_epi32(fiv, lo), ok);
      __m256 x0, x1;
      lane_taps(buf + j * sm, z0, rel, x0, x1);
      add(j, c0, c1, ok, x0, x1);
    }
  }
  (void)zero;
  return _mm256_add_ps(acc0, acc1);
}

// 2-D, one float32 image, one view: the rays in lane groups of kRows neighbouring detector
// bins, one lane per ray; a lane's taps at slice j are read from a window of 16 voxels of
// that slice (two loads and permutes). The slices are walked in slabs of kSlab, each slab by
// every group in turn, so that the slab's rows stay in L1 for all groups (a group walking
// all slices before the next one found its rows evicted); a group's partial sums of a slab
// are added to its sums in cs.acc. Groups whose rays do not share their main axis go to
// one_ray(iu) ray by ray (ray_forward); view_adjoint_2d is the exact transpose.
template <typename OneRay>
inline void view_forward_2d(const float* const* bufs, const Padded* lay, const Volume& volume, const double* vec,
                            const Detector& det, float* out, ColumnScratch& cs, OneRay&& one_ray) {
  constexpr int kSlab = 16;
  const int nu = det.nu, groups = (nu + kRows - 1) / kRows;
  cs.groups2d.resize(groups);
  cs.acc.assign((size_t)groups * kRows, 0.0f);
  int jlo = 1 << 30, jhi = -1;
  for (int g = 0; g < groups; ++g) {
    Line lines[kRows];
    bool on[kRows];
    for (int l = 0; l < kRows; ++l) {
      const int iu = g * kRows + l;
      on[l] = iu < nu && pr::ray_line<2>(vec, volume, det, iu, 0, lines[l]);
    }
    LaneGroup2d& G = cs.groups2d[g];
    if (!make_lane_group(lines, on, G)) {
      for (int iu = g * kRows; iu < nu && iu < (g + 1) * kRows; ++iu) one_ray(iu);
      G.m = -2;  // done
      continue;
    }
    if (G.m < 0) continue;  // no ray of the group has a sample: zeros
    jlo = G.jlo < jlo ? G.jlo : jlo;
    jhi = G.jhi > jhi ? G.jhi : jhi;
  }
  for (int jb = jlo; jb < jhi; jb += kSlab) {
    for (int g = 0; g < groups; ++g) {
      const LaneGroup2d& G = cs.groups2d[g];
      const int a = G.jlo > jb ? G.jlo : jb, b = G.jhi < jb + kSlab ? G.jhi : jb + kSlab;
      if (G.m < 0 || a >= b) continue;
      const int li = layout_of<2>(G.m), n1 = volume.n[G.m == 0 ? 1 : 0];
      const float* buf = bufs[li] + lay[li].base;
      const int64_t sm = lay[li].stride[G.m];
      const __m256 sum = slab_forward_2d(G, a, b, buf, sm, n1);
      float* acc = &cs.acc[(size_t)g * kRows];
      _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), sum));
    }
  }
  for (int g = 0; g < groups; ++g) {
    if (cs.groups2d[g].m == -2) continue;
    for (int iu = g * kRows; iu < nu && iu < (g + 1) * kRows; ++iu) out[iu] = cs.acc[iu];
  }
}
#endif

// Forward projection of one chunk: y[b0 + b, ray] for every ray.
template <typename T, int DIM, int NB, typename OFF>
void forward_chunk(const T* const* bufs, const Padded* lay, const Volume& vol, const double* vecs, int nviews,
                   const Detector& det, int b0, int nb, T* y, int nthreads) {
  const int64_t rays_per_view = (int64_t)det.nu * det.nv;
  const int64_t nrays = rays_per_view * nviews;
  const int vdim = pr::view_stride(det);
#if defined(__AVX2__)
  if constexpr (DIM == 2 && NB == 1 && std::is_same<T, float>::value) {
    // one view at a time (view_forward_2d)
#pragma omp parallel num_threads(nthreads)
    {
      ColumnScratch cs;
#pragma omp for schedule(dynamic, 1)
      for (int64_t view = 0; view < nviews; ++view) {
        T* yr = y + (int64_t)b0 * nrays + view * rays_per_view;
        const double* vec = vecs + view * vdim;
        view_forward_2d(bufs, lay, vol, vec, det, yr, cs,
                        [&](int iu) { ray_forward<T, DIM, NB, OFF>(bufs, lay, vol, vec, det, iu, 0, yr + iu); });
      }
    }
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (DIM == 3 && NB == 1 && std::is_same<T, float>::value) {
    if (lay[0].stride[2] == 1) {
      // one detector column at a time (see column_forward)
      const T* buf0 = bufs[0] + lay[0].base;
#pragma omp parallel num_threads(nthreads)
      {
        ColumnScratch cs;
#pragma omp for schedule(dynamic, 4)
        for (int64_t g = 0; g < (int64_t)det.nu * nviews; ++g) {
          const int64_t view = g / det.nu;
          const int iu = (int)(g % det.nu);
          T* yr = y + (int64_t)b0 * nrays + view * rays_per_view + iu;
          const double* vec = vecs + view * vdim;
          if (!column_forward(buf0, lay[0], vol, vec, det, iu, yr, det.nu, cs))
            for (int iv = 0; iv < det.nv; ++iv)
              ray_forward<T, DIM, NB, OFF>(bufs, lay, vol, vec, det, iu, iv, yr + (int64_t)iv * det.nu);
        }
      }
      return;
    }
  }
#endif
#pragma omp parallel for schedule(dynamic, 64) num_threads(nthreads)
  for (int64_t r = 0; r < nrays; ++r) {
    const int64_t view = r / rays_per_view;
    const int64_t rem = r - view * rays_per_view;
    const int iv = (int)(rem / det.nu), iu = (int)(rem % det.nu);
    T out[NB];
    ray_forward<T, DIM, NB, OFF>(bufs, lay, vol, vecs + view * vdim, det, iu, iv, out);
    for (int b = 0; b < nb; ++b) y[(int64_t)(b0 + b) * nrays + r] = out[b];
  }
}

#if defined(__AVX2__)
// q[0, 1] += p[0, 1] (two neighbouring floats, one 64-bit load and store).
inline void add_pair(float* q, const float* p) {
  const __m128 a = _mm_castpd_ps(_mm_load_sd((const double*)q)), b = _mm_castpd_ps(_mm_load_sd((const double*)p));
  _mm_store_sd((double*)q, _mm_castps_pd(_mm_add_ps(a, b)));
}

// out[2 l], out[2 l + 1] = u[l], v[l] for the kRows lanes l (out 32-byte aligned): the pairs
// that add_pair adds.
inline void store_pairs(__m256 u, __m256 v, float* out) {
  const __m256 lo4 = _mm256_unpacklo_ps(u, v), hi4 = _mm256_unpackhi_ps(u, v);
  _mm256_store_ps(out, _mm256_permute2f128_ps(lo4, hi4, 0x20));
  _mm256_store_ps(out + kRows, _mm256_permute2f128_ps(lo4, hi4, 0x31));
}

// Add the pairs that nb groups of lanes prepared for C columns of voxels: pair q[b][c] + 2 l at
// cols[c] + fi[b][l], lane l of every group before lane l + 1. Neighbouring lanes often share a
// voxel, so this order puts independent read-modify-writes between those of one voxel.
template <int C>
inline void add_pair_batches(float* const* cols, const int (*fi)[kRows], const float (*q)[C][2 * kRows], int nb) {
  for (int h = 0; h < 2; ++h)
    for (int l = h; l < kRows; l += 2)
      for (int b = 0; b < nb; ++b)
        for (int c = 0; c < C; ++c) add_pair(cols[c] + fi[b][l], q[b][c] + 2 * l);
}

// Adjoint of column_forward: the rays of one detector column (rays r + v * row_step of the
// table, v < nv) whose main axis is m, over slices [lo, hi), into a float32 volume in the
// z-fastest layout; slices outermost, with the weights of inplane_3d and z_weights_3d. At a
// slice the rows' w0 y and w1 y (a lane's pair, add_pair) are summed into the column's
// z-profile, which the two z-columns at fl1 and fl1 + 1 then take times 1 - t1 and t1 in one
// vector pass (half the scattered updates of adding all four taps to the volume: 1.09x).
// Neighbouring rows often share a voxel, so the pairs of up to kBatch groups are added
// interleaved (lane l of every group, even lanes first), which puts independent updates
// between those of one voxel. Lanes without a sample add 0 to voxel 0 of the profile. Lanes
// whose main axis is not m are left to their own pass. Returns false (before writing
// anything) when the column's rays do not share their main axis or in-plane line, or o2 is
// not the layout's contiguous axis; the caller then takes them one by one.
inline bool column_adjoint(const float* yt, const Line* table, int64_t r, int64_t row_step, int nv, int m, int lo,
                           int hi, float* buf, const Padded& p, const Volume& vol, ColumnScratch& cs) {
  constexpr int kBatch = 8;
  const int groups = (nv + kRows - 1) / kRows, lanes = groups * kRows;
  cs.reset(groups);
  int ref = -1;
  // column_forward leaves a column whose rays do not share the main axis to the one-ray walk
  int m0 = -1;
  for (int v = 0; v < nv; ++v) {
    const Line& L = table[r + v * row_step];
    if (L.j1 <= L.j0) continue;
    if (m0 < 0) m0 = L.m;
    if (L.m != m0) return false;
  }
  for (int v = 0; v < lanes; ++v) {
    const Line& L = table[r + (v < nv ? v : 0) * row_step];
    const bool on = v < nv && L.m == m && L.j1 > L.j0;
    if (on) {
      if (ref < 0) ref = v;
      const Line& R = table[r + ref * row_step];
      if (L.a1 != R.a1 || L.b1 != R.b1) return false;
    }
    cs.set_adjoint_lane(v, on, L.a2, L.b2, L.w, on ? yt[r + v * row_step] : 0.0f, L.j0, L.j1, lo, hi);
  }
  if (ref < 0) return true;
  const Line R = table[r + ref * row_step];
  if (p.stride[R.o2] != 1) return false;
  cs.make_offsets(groups);
  const int n2 = vol.n[R.o2];
  const int64_t sm = p.stride[m], s1 = p.stride[R.o1];
  // the slice's z-profile of the column (taps -1 .. n2, and a vector's spare): the rows'
  // w0 y, w1 y, which the two z-columns then take times 1 - t1 and t1
  cs.profile.assign((size_t)n2 + 2 + 8, 0.0f);
  float* prof = cs.profile.data() + 1;
  for (int j = cs.jlo; j < cs.jhi; ++j) {
    const __m256i vj = _mm256_set1_epi32(j);
    alignas(32) float q[kBatch][1][2 * kRows];  // per lane the pair (w0, w1) times y
    alignas(32) int fi[kBatch][kRows];
    __m256i zlo = _mm256_set1_epi32(1 << 30), zhi = _mm256_set1_epi32(-(1 << 30));
    int nb = 0;
    for (int g = 0; g < groups; ++g) {
      if (j >= cs.glo[g] && j < cs.ghi[g]) {
        const int l0 = g * kRows;
        __m256 w0, w1;
        __m256i fiv;
        z_weights_3d(cs, g, j, n2, w0, w1, fiv);
        const __m256i vj0 = _mm256_loadu_si256((const __m256i*)&cs.j0[l0]);
        const __m256i vj1 = _mm256_loadu_si256((const __m256i*)&cs.j1[l0]);
        const __m256i ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(vj0, vj), _mm256_cmpgt_epi32(vj1, vj));
        const __m256 vy = _mm256_and_ps(_mm256_loadu_ps(&cs.y[l0]), _mm256_castsi256_ps(ok));
        store_pairs(_mm256_mul_ps(w0, vy), _mm256_mul_ps(w1, vy), q[nb][0]);
        const __m256i f = _mm256_and_si256(fiv, ok);  // lanes off: voxel 0, value 0
        _mm256_store_si256((__m256i*)fi[nb], f);
        zlo = _mm256_min_epi32(zlo, _mm256_blendv_epi8(_mm256_set1_epi32(1 << 30), fiv, ok));
        zhi = _mm256_max_epi32(zhi, _mm256_blendv_epi8(_mm256_set1_epi32(-(1 << 30)), fiv, ok));
        ++nb;
      }
      if (nb == kBatch || (nb > 0 && g == groups - 1)) {
        add_pair_batches<1>(&prof, fi, q, nb);
        nb = 0;
      }
    }
    alignas(32) int lo8[kRows], hi8[kRows];
    _mm256_store_si256((__m256i*)lo8, zlo);
    _mm256_store_si256((__m256i*)hi8, zhi);
    int z0 = 1 << 30, z1 = -(1 << 30);
    for (int l = 0; l < kRows; ++l) {
      z0 = lo8[l] < z0 ? lo8[l] : z0;
      z1 = hi8[l] > z1 ? hi8[l] : z1;
    }
    if (z0 > z1) {  // no lane had a sample (lanes off added 0 to voxel 0)
      prof[0] = 0.0f;
      continue;
    }
    z1 += 2;  // the second taps: profile [z0, z1)
    __m256 u1, t1;
    const double fl1 = inplane_3d(R, j, u1, t1);
    float* colA = buf + j * sm + (int64_t)fl1 * s1;  // the z-columns at fl1 and fl1 + 1
    float* colB = colA + s1;
    int z = z0;
    for (; z + 8 <= z1; z += 8) {
      const __m256 pz = _mm256_loadu_ps(prof + z);
      _mm256_storeu_ps(colA + z, _mm256_add_ps(_mm256_loadu_ps(colA + z), _mm256_mul_ps(u1, pz)));
      _mm256_storeu_ps(colB + z, _mm256_add_ps(_mm256_loadu_ps(colB + z), _mm256_mul_ps(t1, pz)));
      _mm256_storeu_ps(prof + z, _mm256_setzero_ps());
    }
    const float ua = _mm256_cvtss_f32(u1), ta = _mm256_cvtss_f32(t1);
    for (; z < z1; ++z) {
      colA[z] += ua * prof[z];
      colB[z] += ta * prof[z];
      prof[z] = 0.0f;
    }
    prof[0] = 0.0f;  // lanes off
  }
  return true;
}
#endif

#if defined(__AVX2__)
// Adjoint of view_forward_2d for one view (rays r .. r + nu - 1 of the table, neighbouring
// detector bins) and main axis m, over slices [lo, hi): the same lane groups and weights
// (lane_weights_2d), slices outermost. A lane's two taps are neighbours in the layout and are
// added as one pair (add_pair); neighbouring rays often share a pixel, so the pairs of up to
// kBatch groups (rays 8 bins apart, on other pixels) are added interleaved to keep the
// read-modify-writes of one pixel apart. Lanes without a sample add 0 to pixel 0 of the
// slice. Groups whose rays do not share their main axis (view_forward_2d leaves them to
// ray_forward) go to one_ray(line, value) ray by ray. The order depends on the rays only,
// not on the threads.
template <typename OneRay>
inline void view_adjoint_2d(const float* yt, const Line* table, int64_t r, int nu, int m, int lo, int hi, float* buf,
                            int64_t sm, const Volume& vol, ColumnScratch& cs, OneRay&& one_ray) {
  constexpr int kBatch = 8;
  const int groups = (nu + kRows - 1) / kRows;
  cs.groups2d.resize(groups);
  int jlo = hi, jhi = lo;
  for (int g = 0; g < groups; ++g) {
    Line lines[kRows];
    bool on[kRows];
    alignas(32) float yv[kRows];
    for (int l = 0; l < kRows; ++l) {
      const int v = g * kRows + l;
      on[l] = v < nu && table[r + v].j1 > table[r + v].j0;
      if (on[l]) lines[l] = table[r + v];
      yv[l] = on[l] ? yt[r + v] : 0.0f;
    }
    LaneGroup2d& G = cs.groups2d[g];
    if (!make_lane_group(lines, on, G)) {
      for (int l = 0; l < kRows; ++l)
        if (on[l] && lines[l].m == m) one_ray(lines[l], yv[l]);
      G.jlo = G.jhi = 0;
      continue;
    }
    G.jlo = G.jlo > lo ? G.jlo : lo;
    G.jhi = G.jhi < hi ? G.jhi : hi;
    if (G.m != m || G.jhi <= G.jlo) {
      G.jlo = G.jhi = 0;
      continue;
    }
    G.y = _mm256_load_ps(yv);
    jlo = G.jlo < jlo ? G.jlo : jlo;
    jhi = G.jhi > jhi ? G.jhi : jhi;
  }
  const int n1 = vol.n[m == 0 ? 1 : 0];
  for (int j = jlo; j < jhi; ++j) {
    float* q = buf + j * sm;
    alignas(32) float pairs[kBatch][1][2 * kRows];
    alignas(32) int fi[kBatch][kRows];
    // even groups first, then odd ones: a group shares pixels with its neighbours, whose
    // updates are then half a view apart (1.14x against the groups in order)
    for (int h = 0; h < 2; ++h) {
      int nb = 0;
      for (int g = h; g < groups; g += 2) {
        const LaneGroup2d& G = cs.groups2d[g];
        if (j >= G.jlo && j < G.jhi) {
          __m256 c0, c1;
          __m256i fiv, ok;
          lane_weights_2d(G, j, n1, c0, c1, fiv, ok);
          const __m256 vy = _mm256_and_ps(G.y, _mm256_castsi256_ps(ok));
          const __m256 av = _mm256_mul_ps(c0, vy), bv = _mm256_mul_ps(c1, vy);
          store_pairs(av, bv, pairs[nb][0]);
          _mm256_store_si256((__m256i*)fi[nb], _mm256_and_si256(fiv, ok));
          if (++nb == kBatch) {
            add_pair_batches<1>(&q, fi, pairs, nb);
            nb = 0;
          }
        }
      }
      if (nb > 0) add_pair_batches<1>(&q, fi, pairs, nb);
    }
  }
}
#endif

// Adjoint of one ray L (NB images, values yv) over slices [lo, hi) of its main axis, into the
// padded buffer `buf` of layout p (already offset to voxel (0, 0, 0)); tp is scratch.
template <typename T, int DIM, int NB, typename OFF>
inline void ray_adjoint(const Line& L, const Lanes<T, NB>& yv, int lo, int hi, T* buf, const Padded& p,
                        const Volume& vol, Taps<T, DIM, OFF>& tp) {
  using V = Lanes<T, NB>;
  using V2 = Lanes<T, 2>;
  const int j0 = L.j0 > lo ? L.j0 : lo, j1 = L.j1 < hi ? L.j1 : hi;
  const int64_t sm = p.stride[L.m] * NB;
  const int64_t s1 = p.stride[L.o1] * NB;
  const int64_t s2 = DIM == 3 ? p.stride[L.o2] * NB : 0;
  for (int jb = j0; jb < j1; jb += kBlock) {
    const int cnt = j1 - jb < kBlock ? j1 - jb : kBlock;
    tp.compute(L, vol, jb, cnt, sm, s1, s2);
    for (int k = 0; k < cnt; ++k) {
      T* q = buf + (int64_t)tp.off[k];
      if constexpr (DIM == 2 && NB == 1) {
        store_lanes(q, load_lanes<V2>(q) + load_lanes<V2>(tp.c[0] + 2 * k) * yv);
      } else {
        store_lanes(q, load_lanes<V>(q) + tp.w(0, k) * yv);
        store_lanes(q + s1, load_lanes<V>(q + s1) + tp.w(1, k) * yv);
        if (DIM == 3) {
          store_lanes(q + s2, load_lanes<V>(q + s2) + tp.w(2, k) * yv);
          store_lanes(q + s1 + s2, load_lanes<V>(q + s1 + s2) + tp.w(3, k) * yv);
        }
      }
    }
  }
}

// Adjoint of one chunk: accumulates into the zeroed padded buffers `bufs` (one per layout).
// yt holds the chunk's projections batch-last: yt[ray * NB + b].
template <typename T, int DIM, int NB, typename OFF>
void adjoint_chunk(const T* yt, T* const* bufs, const Padded* lay, const Volume& vol, const double* vecs,
                   int nviews, const Detector& det, Line* table, int nthreads) {
  const int64_t rays_per_view = (int64_t)det.nu * det.nv;
  const int vdim = pr::view_stride(det);
  const int views_per_block = (int)(kMaxTableRays / rays_per_view > 0 ? kMaxTableRays / rays_per_view : 1);
  for (int v0 = 0; v0 < nviews; v0 += views_per_block) {
    if (pr::g_cancel.load(std::memory_order_relaxed)) return;
    const int v1 = v0 + views_per_block < nviews ? v0 + views_per_block : nviews;
    const int64_t nrays = (v1 - v0) * rays_per_view;
    const int64_t r0 = (int64_t)v0 * rays_per_view;
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp for schedule(static)
      for (int64_t r = 0; r < nrays; ++r) {
        const int64_t view = v0 + r / rays_per_view;
        const int64_t rem = r % rays_per_view;
        if (!pr::ray_line<DIM>(vecs + view * vdim, vol, det, (int)(rem % det.nu), (int)(rem / det.nu), table[r]))
          table[r].j1 = table[r].j0 = 0;
      }
      // implicit barrier: the table is complete
#if defined(__AVX2__)
      ColumnScratch columns;  // scratch of column_adjoint and view_adjoint_2d
#endif
      const int nthr = omp_get_num_threads(), tid = omp_get_thread_num();
      for (int m = 0; m < DIM; ++m) {
        // this thread owns slices [lo, hi) along axis m
        const int lo = (int)((int64_t)vol.n[m] * tid / nthr), hi = (int)((int64_t)vol.n[m] * (tid + 1) / nthr);
        const int li = layout_of<DIM>(m);
        const Padded& p = lay[li];
        T* buf = bufs[li] + p.base * NB;
        const int64_t sm = p.stride[m] * NB;
        using V = Lanes<T, NB>;
#if defined(__AVX2__)
        if constexpr (DIM == 2 && NB == 1 && std::is_same<T, float>::value) {
          // one view at a time (view_adjoint_2d)
          Taps<T, DIM, OFF> tp;
          const auto one_ray = [&](const Line& L, float value) {
            ray_adjoint<T, DIM, NB, OFF>(L, value, lo, hi, buf, p, vol, tp);
          };
          for (int64_t view = 0; view < v1 - v0; ++view)
            view_adjoint_2d(yt + r0, table, view * rays_per_view, det.nu, m, lo, hi, buf, sm, vol, columns, one_ray);
#pragma omp barrier
          continue;
        }
#endif
        Taps<T, DIM, OFF> tp;
#if defined(__AVX2__)
        if constexpr (rows_path<T, DIM, NB>()) {
          if (p.stride[2] == 1) {  // one detector column at a time (column_adjoint)
            for (int64_t view = 0; view < v1 - v0; ++view)
              for (int iu = 0; iu < det.nu; ++iu) {
                const int64_t r = view * rays_per_view + iu;
                if (column_adjoint(yt + r0, table, r, det.nu, det.nv, m, lo, hi, buf, p, vol, columns)) continue;
                for (int iv = 0; iv < det.nv; ++iv) {
                  const Line& L = table[r + (int64_t)iv * det.nu];
                  if (L.m == m && L.j1 > L.j0)
                    ray_adjoint<T, DIM, NB, OFF>(L, load_lanes<V>(yt + (r0 + r + (int64_t)iv * det.nu) * NB), lo, hi,
                                                 buf, p, vol, tp);
                }
              }
#pragma omp barrier
            continue;
          }
        }
#endif
        for (int64_t r = 0; r < nrays; ++r) {
          const Line& L = table[r];
          if (L.m != m || L.j1 <= L.j0) continue;
          ray_adjoint<T, DIM, NB, OFF>(L, load_lanes<V>(yt + (r0 + r) * NB), lo, hi, buf, p, vol, tp);
        }
#pragma omp barrier
      }
    }
  }
}

// A zero-filled work buffer in 2 MiB-aligned memory that asks the kernel for transparent huge
// pages (fewer TLB misses on the scattered taps of a volume of several MiB; a hint only).
template <typename T>
class PageBuffer {
 public:
  PageBuffer() = default;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer() { free(p_); }
  // n zero elements (reusing the allocation when it is large enough); null when out of memory
  T* zeros(int64_t n) {
    const size_t bytes = ((size_t)n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    if (bytes > cap_) {
      free(p_);
      p_ = nullptr;
      cap_ = 0;
      void* q = nullptr;
      if (posix_memalign(&q, kHuge, bytes) != 0) return nullptr;
#if defined(MADV_HUGEPAGE)
      madvise(q, bytes, MADV_HUGEPAGE);
#endif
      p_ = (T*)q;
      cap_ = bytes;
    }
    memset((void*)p_, 0, (size_t)n * sizeof(T));
    return p_;
  }

 private:
  static constexpr size_t kHuge = (size_t)1 << 21;
  T* p_ = nullptr;
  size_t cap_ = 0;
};

template <typename T, int DIM>
struct Workspace {
  PageBuffer<T> buf[2];
  std::vector<T> yt;
  std::vector<Line> table;
};

template <typename T, int DIM, int NB>
void forward_batch(const T* x, T* y, int b0, int nb, const Volume& vol, const double* vecs, int nviews,
                   const Detector& det, int nthreads, Workspace<T, DIM>& ws) {
  const int64_t nvox = (int64_t)vol.n[0] * vol.n[1] * (DIM == 3 ? vol.n[2] : 1);
  Padded lay[2];
  const T* bufs[2];
  for (int l = 0; l < n_layouts<DIM>(); ++l) {
    lay[l] = padded_layout<DIM>(vol, fastest_axis<DIM>(l, rows_path<T, DIM, NB>()));
    T* b = ws.buf[l].zeros(lay[l].size * NB + kSlack);  // window loads may read past the end
    if (b == nullptr) throw std::bad_alloc();
    copy_padded<T, DIM, NB>(true, false, const_cast<T*>(x), nvox, vol, lay[l], b0, nb, b, nthreads);
    bufs[l] = b;
  }
  // offsets are doubles (exact integers up to 2^53) when int32 is too small
  if (fits_int32(lay[0].size * NB + kSlack))
    forward_chunk<T, DIM, NB, int32_t>(bufs, lay, vol, vecs, nviews, det, b0, nb, y, nthreads);
  else
    forward_chunk<T, DIM, NB, double>(bufs, lay, vol, vecs, nviews, det, b0, nb, y, nthreads);
}

template <typename T, int DIM, int NB>
void adjoint_batch(const T* y, T* x, int b0, int nb, const Volume& vol, const double* vecs, int nviews,
                   const Detector& det, int nthreads, Workspace<T, DIM>& ws) {
  const int64_t nvox = (int64_t)vol.n[0] * vol.n[1] * (DIM == 3 ? vol.n[2] : 1);
  const int64_t nrays = (int64_t)det.nu * det.nv * nviews;
  Padded lay[2];
  T* bufs[2];
  for (int l = 0; l < n_layouts<DIM>(); ++l) {
    lay[l] = padded_layout<DIM>(vol, fastest_axis<DIM>(l, rows_path<T, DIM, NB>()));
    bufs[l] = ws.buf[l].zeros(lay[l].size * NB);
    if (bufs[l] == nullptr) throw std::bad_alloc();
  }
  ws.yt.resize(nrays * NB);
  T* ytd = ws.yt.data();
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t r = 0; r < nrays; ++r)
    for (int b = 0; b < NB; ++b) ytd[r * NB + b] = b < nb ? y[(int64_t)(b0 + b) * nrays + r] : T(0);
  const int64_t rays_per_view = (int64_t)det.nu * det.nv;
  const int64_t block = kMaxTableRays / rays_per_view > 0 ? (kMaxTableRays / rays_per_view) * rays_per_view : rays_per_view;
  ws.table.resize(block < nrays ? block : nrays);
  if (fits_int32(lay[0].size * NB))
    adjoint_chunk<T, DIM, NB, int32_t>(ytd, bufs, lay, vol, vecs, nviews, det, ws.table.data(), nthreads);
  else
    adjoint_chunk<T, DIM, NB, double>(ytd, bufs, lay, vol, vecs, nviews, det, ws.table.data(), nthreads);
  // sum of the layouts' partial back-projections (in a fixed order: deterministic)
  for (int l = n_layouts<DIM>() - 1; l >= 0; --l)
    copy_padded<T, DIM, NB>(false, l != n_layouts<DIM>() - 1, x, nvox, vol, lay[l], b0, nb, bufs[l], nthreads);
}

// Chunk the batch into groups of at most 16 images (power-of-two lanes).
template <typename T, int DIM>
void run(bool adjoint, const T* in, T* out, int64_t batch, const Volume& vol, const double* vecs, int nviews,
         const Detector& det, int nthreads) {
  Workspace<T, DIM> ws;
  for (int64_t b0 = 0; b0 < batch;) {
    const int64_t rem = batch - b0;
    const int nb = (int)(rem < 16 ? rem : 16);
    const int b = (int)b0;
#define PR_CASE(NB)                                                                     \
  if (adjoint)                                                                          \
    adjoint_batch<T, DIM, NB>(in, out, b, nb, vol, vecs, nviews, det, nthreads, ws);       \
  else                                                                                  \
    forward_batch<T, DIM, NB>(in, out, b, nb, vol, vecs, nviews, det, nthreads, ws);
    if (nb > 8) { PR_CASE(16) } else if (nb > 4) { PR_CASE(8) } else if (nb > 2) { PR_CASE(4) }
    else if (nb > 1) { PR_CASE(2) } else { PR_CASE(1) }
#undef PR_CASE
    b0 += nb;
  }
}

template <typename T>
int entry(bool adjoint, const T* in, T* out, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
          const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam, int curved,
          int nthreads) {
  Volume vol;
  Detector det;
  const int err = pr::make_geometry(ndim, vol_n, vol_sp, vol_off, nviews, det_nu, det_nv, beam, curved, vol, det);
  if (err) return err;
  if (batch < 0) return 5;
  if (nthreads < 1) nthreads = 1;
  if (ndim == 2)
    run<T, 2>(adjoint, in, out, batch, vol, vecs, nviews, det, nthreads);
  else
    run<T, 3>(adjoint, in, out, batch, vol, vecs, nviews, det, nthreads);
  return adjoint && pr::g_cancel.load(std::memory_order_relaxed) ? pr::kCancelled : 0;
}

}  // namespace

extern "C" {

// Ask running back-projections to stop (1) or clear the request (0); see pr::g_cancel.
void PR_EXPORT(pr_set_cancel)(int value) { pr::g_cancel.store(value, std::memory_order_relaxed); }

// x: (batch, [nz,] ny, nx) -> y: (batch, nviews, det_nv, det_nu); vol_* are per axis x, y[, z].
int PR_EXPORT(pr_xray_forward_f32)(const float* x, float* y, int64_t batch, int ndim, const int* vol_n,
                                   const double* vol_sp, const double* vol_off, const double* vecs, int nviews,
                                   int det_nu, int det_nv, int beam, int curved, int nthreads) {
  return entry<float>(false, x, y, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      nthreads);
}
int PR_EXPORT(pr_xray_forward_f64)(const double* x, double* y, int64_t batch, int ndim, const int* vol_n,
                                   const double* vol_sp, const double* vol_off, const double* vecs, int nviews,
                                   int det_nu, int det_nv, int beam, int curved, int nthreads) {
  return entry<double>(false, x, y, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       nthreads);
}
int PR_EXPORT(pr_xray_adjoint_f32)(const float* y, float* x, int64_t batch, int ndim, const int* vol_n,
                                   const double* vol_sp, const double* vol_off, const double* vecs, int nviews,
                                   int det_nu, int det_nv, int beam, int curved, int nthreads) {
  return entry<float>(true, y, x, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      nthreads);
}
int PR_EXPORT(pr_xray_adjoint_f64)(const double* y, double* x, int64_t batch, int ndim, const int* vol_n,
                                   const double* vol_sp, const double* vol_off, const double* vecs, int nviews,
                                   int det_nu, int det_nv, int beam, int curved, int nthreads) {
  return entry<double>(true, y, x, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       nthreads);
}

}  // extern "C"
