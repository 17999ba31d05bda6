// precisionrecon: the one source of X-ray transform math.
//
// Every function here is `__host__ __device__` under nvcc and `static inline` on the
// host, so the CPU (OpenMP) and CUDA implementations -- and the forward projection and
// its adjoint -- evaluate bit-for-bit the same interpolation weights. The back-projector
// is therefore the exact transpose of the projector by construction.
//
// Conventions
// -----------
// World coordinates are millimetres, axis k = 0, 1, 2 is x, y, z. Voxel (iz, iy, ix) of a
// volume stored row-major as (nz, ny, nx) has index coordinates q = (ix, iy, iz) and world
// coordinates p_k = (q_k - off_k) * sp_k, i.e. q_k = p_k / sp_k + off_k.
//
// A view is given by vectors (ASTRA `*_vec` layout):
//   2-D: [s_x, s_y, d_x, d_y, u_x, u_y]                      (6 doubles)
//   3-D: [s_x, s_y, s_z, d_x, d_y, d_z, u_x, u_y, u_z, v_x, v_y, v_z]  (12 doubles)
// s is the ray direction (parallel beam) or the source position (cone/fan beam), d the
// detector centre, u (and v) the vectors between neighbouring detector pixels. For a
// curved detector (arc in 2-D, cylinder in 3-D) the detector bends in u around an axis
// through the source parallel to v; |u| is then the arc length between pixel centres and
// u the tangent at the detector centre.
//
// Joseph's method: a ray q(t) = o + t * dir is sampled once per voxel slice along its
// main axis m (largest |dir_m|); at slice j the other coordinates are f = a + b * j and
// the volume is interpolated linearly (bilinearly in 3-D) between voxel centres, with
// zeros outside. Each sample is weighted by the ray length per slice, |dir_mm| / |dir_m|.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define PR_HD __host__ __device__ __forceinline__
#else
#define PR_HD static inline
#endif

namespace pr {

enum { BEAM_PARALLEL = 0, BEAM_CONE = 1 };

struct Volume {
  int n[3];        // voxels along x, y, z (n[2] = 1 for 2-D)
  double sp[3];    // voxel size in mm
  double off[3];   // index coordinate of the world origin
};

struct Detector {
  int nu, nv;      // pixels along u and v (nv = 1 for 2-D)
  int beam;        // BEAM_PARALLEL or BEAM_CONE
  int curved;      // 0: flat, 1: arc (2-D) / cylindrical (3-D)
};

// One ray, reduced to what the Joseph walk needs.
struct Line {
  int m;           // main axis
  int o1, o2;      // the other axes (o2 = -1 in 2-D)
  int j0, j1;      // candidate slices [j0, j1) along m
  double a1, b1;   // coordinate along o1 at slice j: a1 + b1 * j
  double a2, b2;   // coordinate along o2 (3-D only)
  double w;        // ray length per slice (mm)
};

// Detector pixel (iu, iv) of view `vec` in world coordinates.
template <int DIM>
PR_HD void pixel_position(const double* vec, const Detector& det, int iu, int iv, double* pos) {
  const double* s = vec;
  const double* d = vec + DIM;
  const double* u = vec + 2 * DIM;
  const double cu = iu - 0.5 * (det.nu - 1);
  const double cv = (DIM == 3) ? iv - 0.5 * (det.nv - 1) : 0.0;
  if (!det.curved) {
    for (int k = 0; k < DIM; ++k) {
      double p = d[k] + cu * u[k];
      if (DIM == 3) p += cv * vec[3 * DIM + k];
      pos[k] = p;
    }
    return;
  }
  // Curved detector: radius R is the distance of the detector centre from the source,
  // measured perpendicular to v; alpha is the arc angle of pixel column iu.
  double w[3] = {0.0, 0.0, 0.0};
  double vhat[3] = {0.0, 0.0, 0.0};
  double wv = 0.0;
  for (int k = 0; k < DIM; ++k) w[k] = d[k] - s[k];
  if (DIM == 3) {
    const double* v = vec + 3 * DIM;
    const double vn = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int k = 0; k < 3; ++k) vhat[k] = v[k] / vn;
    wv = w[0] * vhat[0] + w[1] * vhat[1] + w[2] * vhat[2];
    for (int k = 0; k < 3; ++k) w[k] -= wv * vhat[k];
  }
  double R = 0.0, un = 0.0;
  for (int k = 0; k < DIM; ++k) {
    R += w[k] * w[k];
    un += u[k] * u[k];
  }
  R = sqrt(R);
  un = sqrt(un);
  const double alpha = cu * un / R;
  const double ca = cos(alpha) - 1.0;
  const double sa = sin(alpha);
  for (int k = 0; k < DIM; ++k) {
    double p = d[k] + ca * w[k] + sa * R * (u[k] / un);
    if (DIM == 3) p += cv * vec[3 * DIM + k];
    pos[k] = p;
  }
}

// Joseph sample of line L at slice j: the floor coordinates fl1 (and fl2) of the first
// voxel along o1 (and o2) and the interpolation weights, in mm:
//   c0: (fl1, fl2)   c1: (fl1 + 1, fl2)   c2: (fl1, fl2 + 1)   c3: (fl1 + 1, fl2 + 1)
// (2-D uses c0, c1). ok is false when every tap lies outside the volume. Written without
// branches so that loops over j vectorise; forward and adjoint both call it.
struct Sample {
  double fl1, fl2, c0, c1, c2, c3;
  bool ok;
};

template <int DIM>
PR_HD Sample joseph_sample(const Line& L, const Volume& vol, double j) {
  Sample s;
  const double f1 = L.a1 + L.b1 * j;
  s.fl1 = floor(f1);
  s.ok = (s.fl1 >= -1.0) & (s.fl1 <= (double)(vol.n[L.o1] - 1));
  const double t1 = f1 - s.fl1;
  double w0 = L.w, w1 = 0.0;
  s.fl2 = 0.0;
  if (DIM == 3) {
    const double f2 = L.a2 + L.b2 * j;
    s.fl2 = floor(f2);
    s.ok = s.ok & (s.fl2 >= -1.0) & (s.fl2 <= (double)(vol.n[L.o2] - 1));
    const double t2 = f2 - s.fl2;
    w0 = L.w * (1.0 - t2);
    w1 = L.w * t2;
  }
  s.c0 = w0 * (1.0 - t1);
  s.c1 = w0 * t1;
  s.c2 = w1 * (1.0 - t1);
  s.c3 = w1 * t1;
  return s;
}

// Bounds of slices j with lo <= a + b * j < hi, widened by one slice on each side
// (ray_line then tightens the range with the exact test of `joseph_sample`).
PR_HD void slice_range(double a, double b, double lo, double hi, int n, int& j0, int& j1) {
  if (b == 0.0) {
    if (!(a >= lo && a < hi)) j1 = j0;
    return;
  }
  double t0 = (lo - a) / b, t1 = (hi - a) / b;
  if (t0 > t1) { const double t = t0; t0 = t1; t1 = t; }
  if (!(t1 >= -1.0 && t0 <= n)) { j1 = j0; return; }  // also rejects NaN
  const int k0 = t0 < 0.0 ? 0 : (int)floor(t0) - 1;
  const int k1 = t1 > n ? n : (int)ceil(t1) + 1;
  if (k0 > j0) j0 = k0;
  if (k1 < j1) j1 = k1;
  if (j1 < j0) j1 = j0;
}

// Set up the Joseph walk of ray (iu, iv) of one view. Returns false for an empty ray.
template <int DIM>
PR_HD bool ray_line(const double* vec, const Volume& vol, const Detector& det, int iu, int iv, Line& L) {
  double pix[3];
  pixel_position<DIM>(vec, det, iu, iv, pix);
  double o[3], dq[3];
  double len2 = 0.0;
  for (int k = 0; k < DIM; ++k) {
    const double dir = (det.beam == BEAM_PARALLEL) ? vec[k] : pix[k] - vec[k];
    const double org = (det.beam == BEAM_PARALLEL) ? pix[k] : vec[k];
    len2 += dir * dir;
    o[k] = org / vol.sp[k] + vol.off[k];
    dq[k] = dir / vol.sp[k];
  }
  int m = 0;
  for (int k = 1; k < DIM; ++k)
    if (fabs(dq[k]) > fabs(dq[m])) m = k;
  if (!(fabs(dq[m]) > 0.0)) return false;
  L.m = m;
  L.o1 = (m == 0) ? 1 : 0;
  L.o2 = (DIM == 3) ? ((m == 2) ? 1 : 2) : -1;
  L.w = sqrt(len2) / fabs(dq[m]);
  // q_o(j) = o_o + (j - o_m) * dq_o / dq_m
  L.b1 = dq[L.o1] / dq[m];
  L.a1 = o[L.o1] - o[m] * L.b1;
  L.j0 = 0;
  L.j1 = vol.n[m];
  slice_range(L.a1, L.b1, -1.0, (double)vol.n[L.o1], vol.n[m], L.j0, L.j1);
  if (DIM == 3) {
    L.b2 = dq[L.o2] / dq[m];
    L.a2 = o[L.o2] - o[m] * L.b2;
    slice_range(L.a2, L.b2, -1.0, (double)vol.n[L.o2], vol.n[m], L.j0, L.j1);
  } else {
    L.a2 = 0.0;
    L.b2 = 0.0;
  }
  // Tighten [j0, j1) to exactly the slices with a valid sample. The sample coordinates
  // are monotone in j (rounding is monotone), so the valid slices form one interval and
  // the walks need no per-sample test.
  while (L.j0 < L.j1 && !joseph_sample<DIM>(L, vol, (double)L.j0).ok) ++L.j0;
  while (L.j1 > L.j0 && !joseph_sample<DIM>(L, vol, (double)(L.j1 - 1)).ok) --L.j1;
  return L.j1 > L.j0;
}

}  // namespace pr
