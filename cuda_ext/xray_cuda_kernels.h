// precisionrecon: per-thread bodies of the CUDA kernels.
//
// Each function is the work of one CUDA thread, written against xray_math.h only. The
// CUDA file (xray_cuda.cu) launches them over a grid; the host emulator
// (xray_cuda_emu.cpp) calls them in plain loops so that the CUDA logic -- above all the
// exactness of the gather back-projection -- is tested on machines without a GPU.
//
// Layouts: volume (batch, nz, ny, nx); projections (batch, nviews, nv, nu). A thread
// handles one ray / voxel for `nb` <= kMaxNB consecutive batch items starting at b0.
#pragma once

#include "xray_math.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define PR_ATOMIC_ADD(ptr, val) atomicAdd((ptr), (val))
#else
#define PR_ATOMIC_ADD(ptr, val) (*(ptr) += (val))
#endif

namespace pr {

constexpr int kMaxNB = 8;

// Accumulation type: float for float/half/bfloat16 inputs, double for double.
template <typename T>
struct AccOf {
  typedef float type;
};
template <>
struct AccOf<double> {
  typedef double type;
};

PR_HD float load_acc(const float* p) { return *p; }
PR_HD double load_acc(const double* p) { return *p; }
PR_HD void store_acc(float* p, float v) { *p = v; }
PR_HD void store_acc(double* p, double v) { *p = v; }
#if defined(__CUDACC__)
// Half-precision inputs are read and written in their own type but accumulated in float.
__device__ __forceinline__ float load_acc(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load_acc(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_acc(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_acc(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
#endif

struct Strides {
  int64_t s[3];  // element strides of axes x, y, z
  int64_t nvox;
};

PR_HD Strides volume_strides(const Volume& vol) {
  Strides st;
  st.s[0] = 1;
  st.s[1] = vol.n[0];
  st.s[2] = (int64_t)vol.n[0] * vol.n[1];
  st.nvox = st.s[2] * vol.n[2];
  return st;
}

// Voxel offsets and weights of the (up to 4) in-volume taps of one Joseph sample.
template <int DIM>
PR_HD int sample_taps(const Line& L, const Volume& vol, const Strides& st, int j, int64_t* off, double* c) {
  const Sample s = joseph_sample<DIM>(L, vol, (double)j);
  const int f1 = (int)s.fl1, f2 = (int)s.fl2;
  const double cs[4] = {s.c0, s.c1, s.c2, s.c3};
  int k = 0;
  for (int t2 = 0; t2 < (DIM == 3 ? 2 : 1); ++t2) {
    const int q2 = f2 + t2;
    if (DIM == 3 && (q2 < 0 || q2 > vol.n[L.o2] - 1)) continue;
    for (int t1 = 0; t1 < 2; ++t1) {
      const int q1 = f1 + t1;
      if (q1 < 0 || q1 > vol.n[L.o1] - 1) continue;
      off[k] = (int64_t)j * st.s[L.m] + (int64_t)q1 * st.s[L.o1] + (DIM == 3 ? (int64_t)q2 * st.s[L.o2] : 0);
      c[k] = cs[t1 + 2 * t2];
      ++k;
    }
  }
  return k;
}

// Forward projection of ray `ray` (view-major, then v, then u).
template <int DIM, typename T>
PR_HD void joseph_forward_ray(int64_t ray, int b0, int nb, const T* x, T* y, const Volume& vol, const Detector& det,
                              const double* vecs, int64_t nrays) {
  typedef typename AccOf<T>::type A;
  const int64_t per_view = (int64_t)det.nu * det.nv;
  const int view = (int)(ray / per_view);
  const int iv = (int)((ray % per_view) / det.nu), iu = (int)(ray % det.nu);
  const Strides st = volume_strides(vol);
  A acc[kMaxNB];
  for (int b = 0; b < kMaxNB; ++b) acc[b] = (A)0;
  Line L;
  if (ray_line<DIM>(vecs + (int64_t)view * view_stride(det), vol, det, iu, iv, L)) {
    for (int j = L.j0; j < L.j1; ++j) {
      int64_t off[4];
      double c[4];
      const int k = sample_taps<DIM>(L, vol, st, j, off, c);
      for (int b = 0; b < nb; ++b) {
        const T* xb = x + (int64_t)(b0 + b) * st.nvox;
        for (int t = 0; t < k; ++t) acc[b] += (A)c[t] * load_acc(xb + off[t]);
      }
    }
  }
  for (int b = 0; b < nb; ++b) store_acc(y + (int64_t)(b0 + b) * nrays + ray, acc[b]);
}

// Back-projection by scattering ray `ray` with atomics (the output must be zeroed first).
template <int DIM, typename T>
PR_HD void joseph_adjoint_ray(int64_t ray, int b0, int nb, const T* y, T* x, const Volume& vol, const Detector& det,
                              const double* vecs, int64_t nrays) {
  typedef typename AccOf<T>::type A;
  const int64_t per_view = (int64_t)det.nu * det.nv;
  const int view = (int)(ray / per_view);
  const int iv = (int)((ray % per_view) / det.nu), iu = (int)(ray % det.nu);
  const Strides st = volume_strides(vol);
  Line L;
  if (!ray_line<DIM>(vecs + (int64_t)view * view_stride(det), vol, det, iu, iv, L)) return;
  A yv[kMaxNB];
  bool any = false;
  for (int b = 0; b < nb; ++b) {
    yv[b] = load_acc(y + (int64_t)(b0 + b) * nrays + ray);
    any = any || yv[b] != (A)0;
  }
  if (!any) return;
  for (int j = L.j0; j < L.j1; ++j) {
    int64_t off[4];
    double c[4];
    const int k = sample_taps<DIM>(L, vol, st, j, off, c);
    for (int b = 0; b < nb; ++b) {
      T* xb = x + (int64_t)(b0 + b) * st.nvox;
      for (int t = 0; t < k; ++t) PR_ATOMIC_ADD(xb + off[t], (T)((A)c[t] * yv[b]));
    }
  }
}

// Detector pixel range [lo, hi] (u, and v in 3-D) that can hold a ray through the box
// [q - 1, q + 1] (index coordinates) around voxel q: every ray that has q as a Joseph tap
// passes through that box. The range is conservative (the caller tests each candidate
// exactly); it falls back to the whole detector where no cheap bound exists.
template <int DIM>
PR_HD void candidate_pixels(const ViewProjection& V, const Volume& vol, const Detector& det, const int* q, int* lo,
                            int* hi) {
  lo[0] = 0;
  hi[0] = det.nu - 1;
  lo[1] = 0;
  hi[1] = det.nv - 1;
  double umin = 1e300, umax = -1e300, vmin = 1e300, vmax = -1e300;
  const int ncorner = DIM == 3 ? 8 : 4;
  bool ok = true;
  double centre[3];
  voxel_centre(vol, q[0], q[1], DIM == 3 ? q[2] : 0, centre);
  double rv_lo = 1e300, rv_hi = -1e300, rho_hi = 0.0;
  for (int c = 0; c < ncorner && ok; ++c) {
    double x[3];
    for (int k = 0; k < 3; ++k) x[k] = centre[k] + (k < DIM ? (((c >> k) & 1) ? 1.0 : -1.0) * vol.sp[k] : 0.0);
    double cu, cv, W;
    if (!project_point<DIM>(V, x, cu, cv, W)) {
      ok = false;
      break;
    }
    umin = cu < umin ? cu : umin;
    umax = cu > umax ? cu : umax;
    vmin = cv < vmin ? cv : vmin;
    vmax = cv > vmax ? cv : vmax;
    if (V.curved) {
      double r[3] = {x[0] - V.s[0], x[1] - V.s[1], x[2] - V.s[2]};
      const double rv = dot3(r, V.vhat);
      for (int k = 0; k < 3; ++k) r[k] -= rv * V.vhat[k];
      const double rho = sqrt(dot3(r, r));
      rv_lo = rv < rv_lo ? rv : rv_lo;
      rv_hi = rv > rv_hi ? rv : rv_hi;
      rho_hi = rho > rho_hi ? rho : rho_hi;
    }
  }
  if (!ok) return;
  if (V.curved) {
    // The arc angle of a convex set seen from the source axis spans the angles of its
    // vertices when it subtends less than pi (about c: the arc angle is a monotone
    // function of the angle at the source; a margin keeps the set's angle at s below pi).
    if ((umax - umin) * V.un / V.R >= (V.curved == 2 ? 3.0 : 3.14159)) return;
    if (DIM == 3) {
      // cv is monotone in tau r_v / rho: bound r_v by the corners (linear), rho from
      // below by the centre minus the half diagonal (rho is 1-Lipschitz) and tau by
      // [R - |a|, R + |a|] (tau = R for the cylinder about the source).
      double r[3] = {centre[0] - V.s[0], centre[1] - V.s[1], centre[2] - V.s[2]};
      const double rv = dot3(r, V.vhat);
      for (int k = 0; k < 3; ++k) r[k] -= rv * V.vhat[k];
      const double half_diag = sqrt(vol.sp[0] * vol.sp[0] + vol.sp[1] * vol.sp[1] + vol.sp[2] * vol.sp[2]);
      const double rho_lo = sqrt(dot3(r, r)) - half_diag;
      if (!(rho_lo > 0.0)) {
        vmin = -1e300;
        vmax = 1e300;
      } else {
        vmin = 1e300;
        vmax = -1e300;
        const double rvs[2] = {rv_lo, rv_hi}, rhos[2] = {rho_lo, rho_hi};
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b)
            for (int c = 0; c < 2; ++c) {
              // tau / rho times r_v is monotone in each of tau, rho and r_v (tau, rho > 0)
              const double tau = c ? V.tau_hi : V.tau_lo;
              const double cv = ((tau / rhos[b]) * rvs[a] - V.wv) / V.vn + V.cv0;
              vmin = cv < vmin ? cv : vmin;
              vmax = cv > vmax ? cv : vmax;
            }
      }
    }
  }
  // A ray on the box boundary gives the voxel weight exactly 0, so only rays strictly
  // inside matter; the margin covers the rounding of the corner projections (~1e-12
  // pixels), and every candidate is tested exactly.
  const double eps = 1e-6;
  if (!(umin - eps <= (double)(det.nu - 1) && umax + eps >= 0.0)) {
    hi[0] = -1;
    return;
  }
  lo[0] = umin - eps > 0.0 ? (int)ceil(umin - eps) : 0;
  hi[0] = umax + eps < (double)(det.nu - 1) ? (int)floor(umax + eps) : det.nu - 1;
  if (DIM == 3) {
    if (!(vmin - eps <= (double)(det.nv - 1) && vmax + eps >= 0.0)) {
      hi[1] = -1;
      return;
    }
    lo[1] = vmin - eps > 0.0 ? (int)ceil(vmin - eps) : 0;
    hi[1] = vmax + eps < (double)(det.nv - 1) ? (int)floor(vmax + eps) : det.nv - 1;
  }
}

// The Joseph weight of voxel q in ray L (from ray_setup), or 0: exactly the weight the
// scatter adds. The scatter walks the slices with a valid sample; a sample with q among
// its taps is valid (its floor coordinates lie in [-1, n - 1]), so no range is needed.
template <int DIM>
PR_HD double joseph_weight(const Line& L, const Volume& vol, const int* q) {
  const int j = q[L.m];
  const Sample s = joseph_sample<DIM>(L, vol, (double)j);
  const int d1 = q[L.o1] - (int)s.fl1;
  const int d2 = DIM == 3 ? q[L.o2] - (int)s.fl2 : 0;
  if (d1 < 0 || d1 > 1 || d2 < 0 || d2 > 1) return 0.0;
  const double cs[4] = {s.c0, s.c1, s.c2, s.c3};
  return cs[d1 + 2 * d2];
}

// Deterministic back-projection of one voxel: gathers exactly the transposed Joseph
// weights of every ray that has the voxel as a tap (no atomics; fixed summation order).
template <int DIM, typename T>
PR_HD void joseph_adjoint_voxel(int64_t voxel, int b0, int nb, const T* y, T* x, const Volume& vol,
                                const Detector& det, const double* vecs, int nviews) {
  typedef typename AccOf<T>::type A;
  const Strides st = volume_strides(vol);
  const int q[3] = {(int)(voxel % vol.n[0]), (int)((voxel / vol.n[0]) % vol.n[1]), (int)(voxel / st.s[2])};
  const int64_t per_view = (int64_t)det.nu * det.nv;
  const int64_t nrays = per_view * nviews;
  A acc[kMaxNB];
  for (int b = 0; b < kMaxNB; ++b) acc[b] = (A)0;
  for (int view = 0; view < nviews; ++view) {
    const double* vec = vecs + (int64_t)view * view_stride(det);
    ViewProjection V;
    view_projection<DIM>(vec, det, 0, V);
    int lo[2], hi[2];
    candidate_pixels<DIM>(V, vol, det, q, lo, hi);
    for (int iv = lo[1]; iv <= hi[1]; ++iv)
      for (int iu = lo[0]; iu <= hi[0]; ++iu) {
        Line L;
        if (!ray_setup<DIM>(vec, vol, det, iu, iv, L)) continue;
        const double w = joseph_weight<DIM>(L, vol, q);
        if (w == 0.0) continue;
        const int64_t ray = (int64_t)view * per_view + (int64_t)iv * det.nu + iu;
        for (int b = 0; b < nb; ++b) acc[b] += (A)w * load_acc(y + (int64_t)(b0 + b) * nrays + ray);
      }
  }
  for (int b = 0; b < nb; ++b) store_acc(x + (int64_t)(b0 + b) * st.nvox + voxel, acc[b]);
}

// Voxel-driven back-projection: the contribution of one view to voxel (ix, iy, iz): point
// taps at its centre, or (2-D, V.footprint) the weights of its footprint.
template <int DIM, typename T>
PR_HD void vbp_gather_view(const ViewProjection& V, const Detector& det, const Volume& vol, int ix, int iy, int iz,
                           int view, int b0, int nb, const T* q, int64_t proj, typename AccOf<T>::type* acc) {
  typedef typename AccOf<T>::type A;
  if (DIM == 2 && V.footprint) {
    Footprint P;
    if (!pixel_footprint(V, det, vol, ix, iy, P)) return;
    const int64_t base = (int64_t)view * det.nu;
    for (int k = P.k0; k <= P.k1; ++k) {
      const A w = (A)footprint_weight(P, k);
      for (int b = 0; b < nb; ++b) acc[b] += w * load_acc(q + (int64_t)(b0 + b) * proj + base + k);
    }
    return;
  }
  VoxelTaps t;
  RowForms F;
  row_forms(V, vol, iy, iz, F);
  if (!row_taps<DIM>(V, det, vol, F, ix, t)) return;
  const int64_t k0 = (int64_t)view * det.nu * det.nv + (int64_t)t.iv * det.nu + t.iu;
  for (int b = 0; b < nb; ++b) {
    const T* qb = q + (int64_t)(b0 + b) * proj;
    A s = (A)0;
    if (t.c[0] != 0.0) s += (A)t.c[0] * load_acc(qb + k0);
    if (t.c[1] != 0.0) s += (A)t.c[1] * load_acc(qb + k0 + 1);
    if (DIM == 3) {
      if (t.c[2] != 0.0) s += (A)t.c[2] * load_acc(qb + k0 + det.nu);
      if (t.c[3] != 0.0) s += (A)t.c[3] * load_acc(qb + k0 + det.nu + 1);
    }
    acc[b] += s;
  }
}

// Voxel-driven projection (transpose of the back-projection): scatter one voxel into one
// view. ATOMIC selects atomics (parallel voxels) or plain adds (one thread owns the view).
template <int DIM, typename T, bool ATOMIC>
PR_HD void vbp_scatter_view(const ViewProjection& V, const Detector& det, const Volume& vol, int ix, int iy, int iz,
                            int view, int b0, int nb, const T* x, int64_t voxel, int64_t nvox, T* q, int64_t proj) {
  typedef typename AccOf<T>::type A;
  if (DIM == 2 && V.footprint) {
    Footprint P;
    if (!pixel_footprint(V, det, vol, ix, iy, P)) return;
    const int64_t base = (int64_t)view * det.nu;
    for (int k = P.k0; k <= P.k1; ++k) {
      const A w = (A)footprint_weight(P, k);
      if (w == (A)0) continue;
      for (int b = 0; b < nb; ++b) {
        const A xv = load_acc(x + (int64_t)(b0 + b) * nvox + voxel);
        T* qk = q + (int64_t)(b0 + b) * proj + base + k;
        if (ATOMIC)
          PR_ATOMIC_ADD(qk, (T)(w * xv));
        else
          *qk = (T)(load_acc(qk) + w * xv);
      }
    }
    return;
  }
  VoxelTaps t;
  RowForms F;
  row_forms(V, vol, iy, iz, F);
  if (!row_taps<DIM>(V, det, vol, F, ix, t)) return;
  const int64_t k0 = (int64_t)view * det.nu * det.nv + (int64_t)t.iv * det.nu + t.iu;
  const int64_t ks[4] = {k0, k0 + 1, k0 + det.nu, k0 + det.nu + 1};
  for (int b = 0; b < nb; ++b) {
    const A xv = load_acc(x + (int64_t)(b0 + b) * nvox + voxel);
    if (xv == (A)0) continue;
    T* qb = q + (int64_t)(b0 + b) * proj;
    for (int k = 0; k < (DIM == 3 ? 4 : 2); ++k) {
      if (t.c[k] == 0.0) continue;
      if (ATOMIC)
        PR_ATOMIC_ADD(qb + ks[k], (T)((A)t.c[k] * xv));
      else
        qb[ks[k]] = (T)(load_acc(qb + ks[k]) + (A)t.c[k] * xv);
    }
  }
}

// Geometry sensitivities of ray `ray`: the derivatives of its Joseph sum with respect to
// the sample coordinates, accumulated along the ray,
//   P[0] = sum_j dS/df1,  P[1] = sum_j j dS/df1  (and P[2], P[3] for f2 in 3-D),
// where S(j) is the (bi)linear interpolation at slice j and f1 = a1 + b1 j. With y the
// projection, dy/da1 = w P[0], dy/db1 = w P[1], dy/dw = y / w: the chain rule to the view
// vectors is done by autograd on the line parameters (precisionrecon/_kernels/geometry.py).
// out: (batch, nrays, K), K = 2 (2-D) or 4 (3-D). Zeros outside the volume, as in the
// projection, so the sums are the exact derivatives wherever no sample sits on a voxel
// boundary (where linear interpolation has a kink).
template <int DIM, typename T>
PR_HD void joseph_sensitivity_ray(int64_t ray, int b0, int nb, const T* x, T* out, const Volume& vol,
                                  const Detector& det, const double* vecs, int64_t nrays) {
  typedef typename AccOf<T>::type A;
  constexpr int K = DIM == 2 ? 2 : 4;
  const int64_t per_view = (int64_t)det.nu * det.nv;
  const int view = (int)(ray / per_view);
  const int iv = (int)((ray % per_view) / det.nu), iu = (int)(ray % det.nu);
  const Strides st = volume_strides(vol);
  A acc[kMaxNB][K];
  for (int b = 0; b < kMaxNB; ++b)
    for (int k = 0; k < K; ++k) acc[b][k] = (A)0;
  Line L;
  if (ray_line<DIM>(vecs + (int64_t)view * view_stride(det), vol, det, iu, iv, L)) {
    for (int j = L.j0; j < L.j1; ++j) {
      const double f1 = L.a1 + L.b1 * j, f2 = DIM == 3 ? L.a2 + L.b2 * j : 0.0;
      const double fl1 = floor(f1), fl2 = floor(f2);
      const double t1 = f1 - fl1, t2 = f2 - fl2;
      const int q1 = (int)fl1, q2 = (int)fl2;
      // the four corner voxels (zero outside the volume)
      bool in1[2], in2[2];
      for (int t = 0; t < 2; ++t) {
        in1[t] = q1 + t >= 0 && q1 + t <= vol.n[L.o1] - 1;
        in2[t] = DIM == 2 ? t == 0 : (q2 + t >= 0 && q2 + t <= vol.n[L.o2] - 1);
      }
      const int64_t base = (int64_t)j * st.s[L.m];
      for (int b = 0; b < nb; ++b) {
        const T* xb = x + (int64_t)(b0 + b) * st.nvox + base;
        A v[2][2];
        for (int tb = 0; tb < 2; ++tb)
          for (int ta = 0; ta < 2; ++ta) {
            const bool inside = in1[ta] && in2[tb];
            v[tb][ta] = inside ? load_acc(xb + (int64_t)(q1 + ta) * st.s[L.o1] +
                                          (DIM == 3 ? (int64_t)(q2 + tb) * st.s[L.o2] : 0))
                               : (A)0;
          }
        A d1, d2 = (A)0;
        if (DIM == 2) {
          d1 = v[0][1] - v[0][0];
        } else {
          d1 = (A)(1.0 - t2) * (v[0][1] - v[0][0]) + (A)t2 * (v[1][1] - v[1][0]);
          d2 = (A)(1.0 - t1) * (v[1][0] - v[0][0]) + (A)t1 * (v[1][1] - v[0][1]);
        }
        acc[b][0] += d1;
        acc[b][1] += (A)j * d1;
        if (DIM == 3) {
          acc[b][2] += d2;
          acc[b][3] += (A)j * d2;
        }
      }
    }
  }
  for (int b = 0; b < nb; ++b)
    for (int k = 0; k < K; ++k) store_acc(out + ((int64_t)(b0 + b) * nrays + ray) * K + k, acc[b][k]);
}

}  // namespace pr
