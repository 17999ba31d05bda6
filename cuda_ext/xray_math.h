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
//   3-D, cylinder about c: [s, d, u, v, c_x, c_y, c_z]                (15 doubles)
// s is the ray direction (parallel beam) or the source position (cone/fan beam), d the
// detector centre, u (and v) the vectors between neighbouring detector pixels. For a
// curved detector (arc in 2-D, cylinder in 3-D; Detector::curved = 1) the detector bends
// in u around an axis through the source parallel to v; |u| is then the arc length
// between pixel centres and u the tangent at the detector centre. Detector::curved = 2
// (3-D cone beam only) bends it around the axis through the point c parallel to v
// instead: the cylinder of a clinical CT detector is centred on the detector focal
// centre, and a flying focal spot moves the source off that axis. The source must lie
// inside the cylinder (every ray from it meets the cylinder once in front of it).
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
  int curved;      // 0: flat, 1: arc (2-D) / cylinder about the source (3-D), 2: cylinder about c
  int stride;      // doubles per view vector: 6 (2-D), 12 (3-D), 15 (3-D, curved = 2)
};

// Doubles per view in the vector array.
PR_HD int view_stride(const Detector& det) { return det.stride; }

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
  // Curved detector: radius R is the distance of the detector centre from the cylinder
  // axis (through the source, or through c when curved = 2), measured perpendicular to v;
  // alpha is the arc angle of pixel column iu.
  const double* axis = (DIM == 3 && det.curved == 2) ? vec + 4 * DIM : s;
  double w[3] = {0.0, 0.0, 0.0};
  double vhat[3] = {0.0, 0.0, 0.0};
  double wv = 0.0;
  for (int k = 0; k < DIM; ++k) w[k] = d[k] - axis[k];
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

// Validate the C ABI geometry arguments and fill Volume/Detector (0 or an error code).
PR_HD int make_geometry(int ndim, const int* vol_n, const double* vol_sp, const double* vol_off, int nviews,
                        int det_nu, int det_nv, int beam, int curved, Volume& vol, Detector& det) {
  if (ndim != 2 && ndim != 3) return 1;
  if (nviews <= 0 || det_nu <= 0 || det_nv <= 0 || (ndim == 2 && det_nv != 1)) return 2;
  if (beam != BEAM_PARALLEL && beam != BEAM_CONE) return 3;
  if (curved != 0 && curved != 1 && curved != 2) return 3;
  if (curved == 2 && (ndim != 3 || beam != BEAM_CONE)) return 3;
  for (int k = 0; k < 3; ++k) {
    vol.n[k] = k < ndim ? vol_n[k] : 1;
    vol.sp[k] = k < ndim ? vol_sp[k] : 1.0;
    vol.off[k] = k < ndim ? vol_off[k] : 0.0;
    if (vol.n[k] <= 0 || !(vol.sp[k] > 0.0)) return 4;
  }
  det.nu = det_nu;
  det.nv = det_nv;
  det.beam = beam;
  det.curved = curved;
  det.stride = ndim == 2 ? 6 : (curved == 2 ? 15 : 12);
  return 0;
}

// Line parameters of ray (iu, iv) of one view (main axis, slope, intercept, weight),
// without its slice range. False when the ray has no direction.
template <int DIM>
PR_HD bool ray_setup(const double* vec, const Volume& vol, const Detector& det, int iu, int iv, Line& L) {
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
  if (DIM == 3) {
    L.b2 = dq[L.o2] / dq[m];
    L.a2 = o[L.o2] - o[m] * L.b2;
  } else {
    L.a2 = 0.0;
    L.b2 = 0.0;
  }
  L.j0 = 0;
  L.j1 = vol.n[m];
  return true;
}

// Set up the Joseph walk of ray (iu, iv) of one view. Returns false for an empty ray.
template <int DIM>
PR_HD bool ray_line(const double* vec, const Volume& vol, const Detector& det, int iu, int iv, Line& L) {
  if (!ray_setup<DIM>(vec, vol, det, iu, iv, L)) return false;
  slice_range(L.a1, L.b1, -1.0, (double)vol.n[L.o1], vol.n[L.m], L.j0, L.j1);
  if (DIM == 3) slice_range(L.a2, L.b2, -1.0, (double)vol.n[L.o2], vol.n[L.m], L.j0, L.j1);
  // Tighten [j0, j1) to exactly the slices with a valid sample. The sample coordinates
  // are monotone in j (rounding is monotone), so the valid slices form one interval and
  // the walks need no per-sample test.
  while (L.j0 < L.j1 && !joseph_sample<DIM>(L, vol, (double)L.j0).ok) ++L.j0;
  while (L.j1 > L.j0 && !joseph_sample<DIM>(L, vol, (double)(L.j1 - 1)).ok) --L.j1;
  return L.j1 > L.j0;
}

// ---------------------------------------------------------------------------------------
// Voxel-driven (pixel-driven) back-projection, the back-projector of FBP and FDK.
//
// For voxel centre x and one view, the ray through x meets the detector at continuous
// pixel coordinates (cu, cv) (pixel centres at integers); the projection value there is
// interpolated linearly in u (bilinearly in u, v) with zeros outside the detector, and
// multiplied by the distance weight W = (D / l)^2 of divergent-beam FBP when asked:
//   flat detector:   l = (x - s) . n   (depth along the detector normal n, pointing away
//                    from the source), D = -s . n      -> W = 1 / U^2 (Kak & Slaney 3.4.2)
//   curved detector: l = |(x - s)_perp| (distance from the source perpendicular to v),
//                    D = -s . w_hat (w the in-plane direction from the cylinder axis --
//                    the source, or c -- to the detector centre)
//                                                      -> W = D^2 / L^2 (Kak & Slaney 3.4.1)
// A cylinder about c (curved = 2): the ray from s through x meets the cylinder at
// s + t (x - s) with t = tau / rho, rho = |(x - s)_perp| and tau the in-plane distance from
// s to the cylinder in the direction r_hat of (x - s)_perp:
//   tau = -a . r_hat + sqrt((a . r_hat)^2 + R^2 - |a|^2),   a = (s - c)_perp,
// (the larger root of |a + tau r_hat| = R; the source lies inside, |a| < R); the hit point
// a + tau r_hat (relative to the axis) gives the arc angle, t (x - s) . v_hat the height.
// With c = s (a = 0) this is the cylinder about the source: tau = R.
// For circular geometries D is the source-to-isocentre distance. Parallel beams: W = 1.
// The voxel-driven forward projection applies exactly the transposed weights.
struct ViewProjection {
  int curved, cone, weighted;
  int footprint;        // 2-D: pixel-footprint weights instead of point taps (flag bit 1)
  double P[3][4];       // flat: (a * den, b * den, den) = P (x, 1); a, b offsets in pixels
  double depth[4];      // flat, cone: l = depth . (x, 1)
  double D;             // distance normalising the weight
  double front;         // flat, cone: sign of den for points in front of the source
  double s[3], what[3], uhat[3], vhat[3];  // curved detector frame
  double R, un, vn, wv; // curved: radius, |u|, |v|, v-offset of the detector centre from s
  double a[3], a2;      // curved = 2: a = (s - c)_perp and |a|^2 - R^2 (< 0: s inside)
  double tau_lo, tau_hi;  // curved: bounds of tau over all directions (R - |a|, R + |a|)
  double cu0, cv0;      // continuous index of the detector centre
};

PR_HD void cross3(const double* a, const double* b, double* c) {
  c[0] = a[1] * b[2] - a[2] * b[1];
  c[1] = a[2] * b[0] - a[0] * b[2];
  c[2] = a[0] * b[1] - a[1] * b[0];
}

PR_HD double dot3(const double* a, const double* b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// Set up the voxel-to-detector map of one view (vectors in the layout of ray_line).
// `flags`: bit 0 the distance weight (divergent beams), bit 1 pixel-footprint weights (2-D).
template <int DIM>
PR_HD void view_projection(const double* vec, const Detector& det, int flags, ViewProjection& V) {
  const int weighted = flags & 1;
  double s[3] = {0, 0, 0}, d[3] = {0, 0, 0}, u[3] = {0, 0, 0}, v[3] = {0, 0, 1};
  for (int k = 0; k < DIM; ++k) {
    s[k] = vec[k];
    d[k] = vec[DIM + k];
    u[k] = vec[2 * DIM + k];
    if (DIM == 3) v[k] = vec[3 * DIM + k];
  }
  V.curved = det.curved;
  V.cone = det.beam == BEAM_CONE;
  V.weighted = weighted && V.cone;
  V.footprint = DIM == 2 && ((flags >> 1) & 1);
  V.cu0 = 0.5 * (det.nu - 1);
  V.cv0 = 0.5 * (det.nv - 1);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 4; ++k) V.P[i][k] = 0.0;
  for (int k = 0; k < 4; ++k) V.depth[k] = 0.0;
  V.D = 1.0;
  V.front = 1.0;
  double e[3], c0[3], c1[3], c2[3];
  if (!V.curved) {
    // Solve p0 + t r = d + a u + b v (Cramer): a = e.(v x r) / u.(v x r), b = e.(r x u) / u.(v x r).
    // In 2-D, v = e_z and the plane is the line d + a u.
    if (V.cone) {  // r = x - s, e = s - d: every term is linear in x
      for (int k = 0; k < 3; ++k) e[k] = s[k] - d[k];
      cross3(e, v, c0);  // a * den = (x - s) . (e x v)
      cross3(u, e, c1);  // b * den = (x - s) . (u x e)
      cross3(u, v, c2);  // den     = (x - s) . (u x v)
      V.front = -dot3(e, c2) < 0.0 ? -1.0 : 1.0;  // sign of (d - s) . (u x v)
      const double* rows[3] = {c0, c1, c2};
      for (int i = 0; i < 3; ++i) {
        for (int k = 0; k < 3; ++k) V.P[i][k] = rows[i][k];
        V.P[i][3] = -dot3(s, rows[i]);
      }
    } else {  // r = s (direction), e = x - d
      cross3(v, s, c0);  // a * den = (x - d) . (v x s)
      cross3(s, u, c1);  // b * den = (x - d) . (s x u)
      for (int k = 0; k < 3; ++k) {
        V.P[0][k] = c0[k];
        V.P[1][k] = c1[k];
      }
      V.P[0][3] = -dot3(d, c0);
      V.P[1][3] = -dot3(d, c1);
      cross3(v, s, c2);
      V.P[2][3] = dot3(u, c2);  // den = u . (v x s), the same for every x
    }
    if (V.weighted) {
      double n[3], w[3];
      cross3(u, v, n);
      for (int k = 0; k < 3; ++k) w[k] = d[k] - s[k];
      const double sign = dot3(n, w) < 0.0 ? -1.0 : 1.0;
      const double nn = sign / sqrt(dot3(n, n));
      for (int k = 0; k < 3; ++k) V.depth[k] = n[k] * nn;
      V.depth[3] = -dot3(s, V.depth);
      V.D = V.depth[3];
    }
    return;
  }
  // Curved detector (cone beam): the geometry of pixel_position.
  const double vn = sqrt(dot3(v, v));
  double w[3];
  for (int k = 0; k < 3; ++k) {
    V.s[k] = s[k];
    V.vhat[k] = v[k] / vn;
    w[k] = d[k] - s[k];
  }
  V.wv = dot3(w, V.vhat);
  for (int k = 0; k < 3; ++k) {
    V.a[k] = 0.0;
    w[k] -= V.wv * V.vhat[k];
  }
  V.a2 = 0.0;
  if (DIM == 3 && det.curved == 2) {  // the frame of the cylinder about c
    const double* c = vec + 4 * DIM;
    double e[3];
    for (int k = 0; k < 3; ++k) {
      w[k] = d[k] - c[k];
      e[k] = s[k] - c[k];
    }
    const double wc = dot3(w, V.vhat), ec = dot3(e, V.vhat);
    for (int k = 0; k < 3; ++k) {
      w[k] -= wc * V.vhat[k];
      V.a[k] = e[k] - ec * V.vhat[k];
    }
  }
  V.R = sqrt(dot3(w, w));
  V.a2 = dot3(V.a, V.a) - V.R * V.R;
  const double an = sqrt(dot3(V.a, V.a));
  V.tau_lo = V.R - an;
  V.tau_hi = V.R + an;
  V.un = sqrt(dot3(u, u));
  V.vn = vn;
  for (int k = 0; k < 3; ++k) {
    V.what[k] = w[k] / V.R;
    V.uhat[k] = u[k] / V.un;
  }
  V.D = -dot3(s, V.what);
}

// Interpolation taps of voxel centre x (world mm) in one view: detector pixel (iu, iv) and
// weights c[0..3] for (iu, iv), (iu + 1, iv), (iu, iv + 1), (iu + 1, iv + 1), each already
// multiplied by the distance weight; taps outside the detector get weight 0 (and must not
// be read). Filled by finish_taps / row_taps, which return false when no tap is on the
// detector.
struct VoxelTaps {
  int iu, iv;
  double c[4];
};

// Flat detector: the detector coordinates and distance weight of a point from its affine
// forms (the rows of V.P and V.depth applied to (x, 1)): numerators na, nb, denominator den
// and depth l give cu = na / den + cu0, cv = nb / den + cv0 and W = (D / l)^2 (1 unless
// V.weighted). The one copy of this maths: project_point, row_taps and pixel_footprint each
// evaluate the forms in their own (fixed) order and call it. False when den is 0 or NaN,
// the point is at or behind the source (cone beam), or its depth is not positive (weighted).
PR_HD bool flat_project(const ViewProjection& V, double na, double nb, double den, double l, double& cu, double& cv,
                        double& W) {
  if (!(den != 0.0)) return false;
  if (V.cone && !(den * V.front > 0.0)) return false;  // at or behind the source
  W = 1.0;
  if (V.weighted) {
    if (!(l > 0.0)) return false;
    W = (V.D / l) * (V.D / l);
  }
  cu = na / den + V.cu0;
  cv = nb / den + V.cv0;
  return true;
}

// Continuous detector coordinates (cu, cv) of the ray through point x (world mm), and its
// distance weight W. False when x is not projected (see flat_project) or, for a curved
// detector, lies on the source axis.
template <int DIM>
PR_HD bool project_point(const ViewProjection& V, const double* x, double& cu, double& cv, double& W) {
  W = 1.0;
  cv = 0.0;
  if (!V.curved) {
    const double xa[4] = {x[0], x[1], DIM == 3 ? x[2] : 0.0, 1.0};
    double num_a = 0.0, num_b = 0.0, den = 0.0, l = 0.0;
    for (int k = 0; k < 4; ++k) {
      num_a += V.P[0][k] * xa[k];
      num_b += V.P[1][k] * xa[k];
      den += V.P[2][k] * xa[k];
      l += V.depth[k] * xa[k];
    }
    return flat_project(V, num_a, num_b, den, l, cu, cv, W);
  }
  double r[3] = {x[0] - V.s[0], x[1] - V.s[1], (DIM == 3 ? x[2] : 0.0) - V.s[2]};
  const double rv = dot3(r, V.vhat);
  for (int k = 0; k < 3; ++k) r[k] -= rv * V.vhat[k];
  const double rn = sqrt(dot3(r, r));
  if (!(rn > 0.0)) return false;
  if (DIM == 3 && V.curved == 2) {
    const double ar = dot3(V.a, r) / rn;
    const double disc = ar * ar - V.a2;
    if (!(disc > 0.0)) return false;  // the source is not inside the cylinder
    const double t = (sqrt(disc) - ar) / rn;  // tau / rho
    double h[3];
    for (int k = 0; k < 3; ++k) h[k] = V.a[k] + t * r[k];
    const double alpha = atan2(dot3(h, V.uhat), dot3(h, V.what));
    cu = alpha * V.R / V.un + V.cu0;
    cv = (t * rv - V.wv) / V.vn + V.cv0;
  } else {
    const double alpha = atan2(dot3(r, V.uhat), dot3(r, V.what));
    cu = alpha * V.R / V.un + V.cu0;
    if (DIM == 3) cv = ((V.R / rn) * rv - V.wv) / V.vn + V.cv0;
  }
  if (V.weighted) W = (V.D / rn) * (V.D / rn);
  return true;
}

// World coordinates of voxel (ix, iy, iz).
PR_HD void voxel_centre(const Volume& vol, int ix, int iy, int iz, double* x) {
  x[0] = (ix - vol.off[0]) * vol.sp[0];
  x[1] = (iy - vol.off[1]) * vol.sp[1];
  x[2] = (iz - vol.off[2]) * vol.sp[2];
}

// Taps of continuous detector coordinates (cu, cv) with distance weight W; false when no tap
// is on the detector.
template <int DIM>
PR_HD bool finish_taps(double cu, double cv, double W, const Detector& det, VoxelTaps& T) {
  // Range test before the integer conversion (NaN and huge values fail it).
  if (!(cu > -1.0 && cu < (double)det.nu)) return false;
  if (DIM == 3 && !(cv > -1.0 && cv < (double)det.nv)) return false;
  const double fu = floor(cu), tu = cu - fu;
  T.iu = (int)fu;
  double wu0 = (1.0 - tu) * W, wu1 = tu * W;
  if (T.iu < 0) wu0 = 0.0;
  if (T.iu + 1 > det.nu - 1) wu1 = 0.0;
  if (DIM == 2) {
    T.iv = 0;
    T.c[0] = wu0;
    T.c[1] = wu1;
    T.c[2] = 0.0;
    T.c[3] = 0.0;
    return true;
  }
  const double fv = floor(cv), tv = cv - fv;
  T.iv = (int)fv;
  double wv0 = 1.0 - tv, wv1 = tv;
  if (T.iv < 0) wv0 = 0.0;
  if (T.iv + 1 > det.nv - 1) wv1 = 0.0;
  T.c[0] = wu0 * wv0;
  T.c[1] = wu1 * wv0;
  T.c[2] = wu0 * wv1;
  T.c[3] = wu1 * wv1;
  return true;
}

// One row of voxels (iy, iz) in one view. For flat detectors the numerators, the
// denominator and the depth of project_point are linear along x: value(ix) = v0 + ix * dv,
// so a row costs one set-up and a division per voxel. Curved detectors keep the row's y, z.
struct RowForms {
  double a0, da, b0, db, c0, dc, l0, dl;
  double y, z;
};

PR_HD void row_forms(const ViewProjection& V, const Volume& vol, int iy, int iz, RowForms& F) {
  double x0[3];
  voxel_centre(vol, 0, iy, iz, x0);
  F.y = x0[1];
  F.z = x0[2];
  const double xa[4] = {x0[0], x0[1], x0[2], 1.0};
  double f[4][2];
  const double* rows[4] = {V.P[0], V.P[1], V.P[2], V.depth};
  for (int r = 0; r < 4; ++r) {
    double v = 0.0;
    for (int k = 0; k < 4; ++k) v += rows[r][k] * xa[k];
    f[r][0] = v;
    f[r][1] = rows[r][0] * vol.sp[0];
  }
  F.a0 = f[0][0];
  F.da = f[0][1];
  F.b0 = f[1][0];
  F.db = f[1][1];
  F.c0 = f[2][0];
  F.dc = f[2][1];
  F.l0 = f[3][0];
  F.dl = f[3][1];
}

// Taps of voxel ix of a row: the voxel-driven weights, the same on CPU and CUDA and in the
// back-projection and its transpose. False when the voxel is not projected or no tap is on
// the detector.
template <int DIM>
PR_HD bool row_taps(const ViewProjection& V, const Detector& det, const Volume& vol, const RowForms& F, int ix,
                    VoxelTaps& T) {
  double cu, cv, W;
  if (!V.curved) {
    if (!flat_project(V, F.a0 + ix * F.da, F.b0 + ix * F.db, F.c0 + ix * F.dc, F.l0 + ix * F.dl, cu, cv, W))
      return false;
  } else {
    const double x[3] = {(ix - vol.off[0]) * vol.sp[0], F.y, F.z};
    if (!project_point<DIM>(V, x, cu, cv, W)) return false;
  }
  return finish_taps<DIM>(cu, cv, W, det, T);
}

// Whether any voxel ix0 <= ix <= ix1 of a row (forms F of row_forms) can have a tap on the
// detector in v, i.e. cv in (-1, nv): false only when none can (3-D; 2-D: always true). A
// conservative bound, so skipping such a segment leaves the back-projection and its
// transpose bit for bit unchanged (row_taps would give no tap there); it lets a view of a
// long helix skip the slices its cone does not reach.
//   flat: cv = nb / den is linear-fractional in ix, monotone on the segment when den keeps
//         its sign: the end points bound it;
//   curved: cv = (t r_v - wv) / |v| + cv0 with t = tau / rho, r_v linear in ix (end points),
//         rho = |(x - s)_perp| convex (at most the end points' maximum, at least the
//         distance of the source from the segment) and tau in [tau_lo, tau_hi]; the bound
//         is monotone in each, so the corners bound it.
// A margin of kReachMargin pixels covers the rounding of the per-voxel coordinates.
constexpr double kReachMargin = 1e-6;

template <int DIM>
PR_HD bool row_segment_reaches(const ViewProjection& V, const Detector& det, const Volume& vol, const RowForms& F,
                               int ix0, int ix1) {
  if (DIM == 2) return true;
  double lo, hi;
  if (!V.curved) {
    const double n0 = F.b0 + ix0 * F.db, n1 = F.b0 + ix1 * F.db;
    const double d0 = F.c0 + ix0 * F.dc, d1 = F.c0 + ix1 * F.dc;
    if (!(d0 * d1 > 0.0)) return true;  // den changes sign or vanishes: no cheap bound
    const double v0 = n0 / d0, v1 = n1 / d1;
    lo = (v0 < v1 ? v0 : v1) + V.cv0;
    hi = (v0 < v1 ? v1 : v0) + V.cv0;
  } else {
    const double xa = (ix0 - vol.off[0]) * vol.sp[0], xb = (ix1 - vol.off[0]) * vol.sp[0];
    double r0[3] = {xa - V.s[0], F.y - V.s[1], F.z - V.s[2]};
    double r1[3] = {xb - V.s[0], F.y - V.s[1], F.z - V.s[2]};
    const double rv0 = dot3(r0, V.vhat), rv1 = dot3(r1, V.vhat);
    for (int k = 0; k < 3; ++k) {
      r0[k] -= rv0 * V.vhat[k];
      r1[k] -= rv1 * V.vhat[k];
    }
    // distance of the source (the origin here) from the segment r0 -> r1, and the far end
    double e[3];
    for (int k = 0; k < 3; ++k) e[k] = r1[k] - r0[k];
    const double ee = dot3(e, e);
    double tp = ee > 0.0 ? -dot3(r0, e) / ee : 0.0;
    tp = tp < 0.0 ? 0.0 : (tp > 1.0 ? 1.0 : tp);
    double m[3];
    for (int k = 0; k < 3; ++k) m[k] = r0[k] + tp * e[k];
    const double rho_lo = sqrt(dot3(m, m)) * (1.0 - 1e-12);
    const double a0 = sqrt(dot3(r0, r0)), a1 = sqrt(dot3(r1, r1));
    const double rho_hi = (a0 > a1 ? a0 : a1) * (1.0 + 1e-12);
    if (!(rho_lo > 0.0)) return true;
    const double k_lo = V.tau_lo / rho_hi, k_hi = V.tau_hi / rho_lo;
    const double rvs[2] = {rv0 < rv1 ? rv0 : rv1, rv0 < rv1 ? rv1 : rv0}, ks[2] = {k_lo, k_hi};
    lo = 1e300;
    hi = -1e300;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const double cv = (ks[b] * rvs[a] - V.wv) / V.vn + V.cv0;
        lo = cv < lo ? cv : lo;
        hi = cv > hi ? cv : hi;
      }
  }
  // NaN bounds fail both tests: keep the segment
  return !(hi < -1.0 - kReachMargin || lo > (double)det.nv + kReachMargin);
}

// ---------------------------------------------------------------------------------------
// Pixel footprints (2-D): the back-projection of a linearly interpolated projection q,
// averaged over the pixel instead of sampled at its centre. Along the detector (in bins)
// the pixel's shadow is the trapezoid T with breakpoints a <= b <= c <= d, the sorted
// projections of its corners (exact for parallel beams; for divergent beams the trapezoid
// approximation of separable footprints, Long, Fessler & Balter 2010), normalised to unit
// area. Bin k gets the weight
//     w_k = W * int T(t) hat(t - k) dt
//         = W / area * ([C(d - k) - C(c - k)] / (d - c) - [C(b - k) - C(a - k)] / (b - a)),
// with hat the linear interpolation kernel, C(s) = R3(s + 1) - 2 R3(s) + R3(s - 1) its
// second antiderivative (R3(s) = max(s, 0)^3 / 6; integrate by parts twice: T'' is four
// scaled Diracs), area = (d + c - b - a) / 2 and W the distance weight at the centre. The
// weights are >= 0 and sum to W over a detector that holds the whole shadow. Breakpoint
// pairs closer than kFootprintMinGap (e.g. a = b at 0 and 90 degrees) are moved apart to
// that gap about their midpoint: the area is unchanged and the weights change by less
// than kFootprintMinGap^2 / 24 < 1e-9, with no division by a tiny width.
constexpr double kFootprintMinGap = 1e-4;

struct Footprint {
  double t[4];   // breakpoints a, b, c, d (continuous bin coordinates)
  double inv_ab, inv_cd;
  double scale;  // W / area
  int k0, k1;    // bins with a non-zero weight, clipped to the detector
};

// Compare-exchange of two breakpoints (branch-free min / max; NaN is caught by the range test).
PR_HD void sort2(double& lo, double& hi) {
  const double a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
  lo = a;
  hi = b;
}

// The four projected corners of a pixel in increasing order (a sorting network of five
// compare-exchanges).
PR_HD void sort4(double& t0, double& t1, double& t2, double& t3) {
  sort2(t0, t1);
  sort2(t2, t3);
  sort2(t0, t2);
  sort2(t1, t3);
  sort2(t1, t2);
}

// Widen the trapezoid's rising (t0, t1) and falling (t2, t3) ramps to at least kFootprintMinGap
// bins about their midpoints, so that 1 / (t1 - t0) and 1 / (t3 - t2) stay finite (a pixel
// seen along its side); the callers take the area before, from the true corners.
PR_HD void widen_footprint_gaps(double& t0, double& t1, double& t2, double& t3) {
  if (t1 - t0 < kFootprintMinGap) {
    const double mid = 0.5 * (t0 + t1);
    t0 = mid - 0.5 * kFootprintMinGap;
    t1 = mid + 0.5 * kFootprintMinGap;
  }
  if (t3 - t2 < kFootprintMinGap) {
    const double mid = 0.5 * (t2 + t3);
    t2 = mid - 0.5 * kFootprintMinGap;
    t3 = mid + 0.5 * kFootprintMinGap;
  }
}

// Footprint of pixel (ix, iy) in one view; false when it misses the detector or its centre
// or a corner is not projected (at or behind the source).
PR_HD bool pixel_footprint(const ViewProjection& V, const Detector& det, const Volume& vol, int ix, int iy,
                           Footprint& F) {
  double x[3], cu, cv, w, W = 1.0, t[4];
  voxel_centre(vol, ix, iy, 0, x);
  const double hx = 0.5 * vol.sp[0], hy = 0.5 * vol.sp[1];
  // corner k is (x -+ hx, y -+ hy) with + where bit 0 (x) or bit 1 (y) of k is set
  if (!V.curved) {
    // flat: numerator, denominator and depth are affine in x, so the corners are sums of the
    // centre's terms and the half-pixel steps (the denominator is constant for parallel beams)
    const double num = V.P[0][0] * x[0] + V.P[0][1] * x[1] + V.P[0][3];
    const double den = V.P[2][0] * x[0] + V.P[2][1] * x[1] + V.P[2][3];
    const double l = V.depth[0] * x[0] + V.depth[1] * x[1] + V.depth[3];
    if (!flat_project(V, num, 0.0, den, l, cu, cv, W)) return false;  // the centre: W
    const double nx = V.P[0][0] * hx, ny = V.P[0][1] * hy, dx = V.P[2][0] * hx, dy = V.P[2][1] * hy;
    for (int k = 0; k < 4; ++k) {
      // a - b == a + (-b) exactly, so these are the sums den - dx - dy, ... of the centre's terms;
      // the corner shares the centre's depth (already tested) and its own weight is not used
      const double nk = num + ((k & 1) ? nx : -nx) + ((k & 2) ? ny : -ny);
      const double dk = den + ((k & 1) ? dx : -dx) + ((k & 2) ? dy : -dy);
      if (!flat_project(V, nk, 0.0, dk, l, t[k], cv, w)) return false;  // a corner behind the source
    }
  } else {
    if (!project_point<2>(V, x, cu, cv, W)) return false;
    for (int k = 0; k < 4; ++k) {
      const double corner[3] = {x[0] + ((k & 1) ? hx : -hx), x[1] + ((k & 2) ? hy : -hy), x[2]};
      if (!project_point<2>(V, corner, t[k], cv, w)) return false;
    }
  }
  double t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
  sort4(t0, t1, t2, t3);
  // Range test before the integer conversion (NaN and huge values fail it).
  if (!(t3 > -1.0 && t0 < (double)det.nu)) return false;
  const double area = 0.5 * (t3 + t2 - t1 - t0);
  if (!(area > 0.0)) return false;
  widen_footprint_gaps(t0, t1, t2, t3);
  F.t[0] = t0;
  F.t[1] = t1;
  F.t[2] = t2;
  F.t[3] = t3;
  F.inv_ab = 1.0 / (t1 - t0);
  F.inv_cd = 1.0 / (t3 - t2);
  F.scale = W / area;
  // hat(t - k) meets (a, d) for a - 1 < k < d + 1
  const double lo = floor(t0 - 1.0) + 1.0, hi = ceil(t3 + 1.0) - 1.0;
  F.k0 = lo < 0.0 ? 0 : (int)lo;
  F.k1 = hi > (double)(det.nu - 1) ? det.nu - 1 : (int)hi;
  return F.k0 <= F.k1;
}

// Region of C(z): 0 below -1, 1 on [-1, 0), 2 on [0, 1), 3 above; and its polynomial there.
PR_HD int hat_c_region(double z) { return z < -1.0 ? 0 : (z < 0.0 ? 1 : (z < 1.0 ? 2 : 3)); }

PR_HD void hat_c_poly(int region, double* a) {
  const double sixth = 1.0 / 6.0;
  a[0] = region == 1 || region == 2 ? sixth : 0.0;
  a[1] = region == 3 ? 1.0 : (region == 0 ? 0.0 : 0.5);
  a[2] = region == 1 || region == 2 ? 0.5 : 0.0;
  a[3] = region == 1 ? sixth : (region == 2 ? -sixth : 0.0);
}

// Coefficients in t of (C(y + t) - C(x + t)) * inv, inv = 1 / (y - x), x <= y in regions rx <= ry
// for t on the piece. Same region: the divided difference of the cubic in closed form; one
// knot kn between them: that plus the jump m (x + t - kn)^3 / 6 of C there (m = 1, -2, 1 at
// kn = -1, 0, 1; |x + t - kn| < y - x); further apart (y - x > 1): the plain difference.
PR_HD void hat_c_divided_difference(double x, double y, int rx, int ry, double inv, double* c) {
  double a[4];
  hat_c_poly(ry, a);
  if (ry - rx <= 1) {
    const double sxy = x + y, qxy = x * x + x * y + y * y;
    c[0] = a[1] + a[2] * sxy + a[3] * qxy;
    c[1] = 2.0 * a[2] + 3.0 * a[3] * sxy;
    c[2] = 3.0 * a[3];
    c[3] = 0.0;
    if (ry == rx + 1) {
      const double kn = (double)(ry - 2), m = ry == 2 ? -2.0 : 1.0, d = x - kn, f = m * inv * (1.0 / 6.0);
      c[0] += f * d * d * d;
      c[1] += f * 3.0 * d * d;
      c[2] += f * 3.0 * d;
      c[3] += f;
    }
    return;
  }
  double b[4];
  hat_c_poly(rx, b);
  // P(e + t) = sum_n P^(n)(e) / n! t^n for the cubic P with coefficients a (y) and b (x)
  c[0] = ((a[0] + y * (a[1] + y * (a[2] + y * a[3]))) - (b[0] + x * (b[1] + x * (b[2] + x * b[3])))) * inv;
  c[1] = ((a[1] + y * (2.0 * a[2] + 3.0 * y * a[3])) - (b[1] + x * (2.0 * b[2] + 3.0 * x * b[3]))) * inv;
  c[2] = ((a[2] + 3.0 * y * a[3]) - (b[2] + 3.0 * x * b[3])) * inv;
  c[3] = (a[3] - b[3]) * inv;
}

// Weight of bin k (F.k0 <= k <= F.k1): C's divided differences in closed form (no 1 / (b - a)
// multiplies a difference that cancels), the same values as the parallel-beam tables below.
PR_HD double footprint_weight(const Footprint& F, int k) {
  const double x0 = F.t[0] - k, x1 = F.t[1] - k, x2 = F.t[2] - k, x3 = F.t[3] - k;
  double cd[4], ab[4];
  hat_c_divided_difference(x2, x3, hat_c_region(x2), hat_c_region(x3), F.inv_cd, cd);
  hat_c_divided_difference(x0, x1, hat_c_region(x0), hat_c_region(x1), F.inv_ab, ab);
  return F.scale * (cd[0] - ab[0]);
}

// ---------------------------------------------------------------------------------------
// Parallel-beam footprints as one kernel per view. With a parallel beam and a flat detector
// every pixel of a view casts the same trapezoid, shifted: with the breakpoints t_i = c + tau_i
// (c the projection of the pixel centre), footprint_weight of bin k is h(c - k) with
//     h(s) = scale * ([C(s + tau3) - C(s + tau2)] inv_cd - [C(s + tau1) - C(s + tau0)] inv_ab),
// and the pixel's back-projection is g(c) = sum_k h(c - k) q_k. h is a piecewise cubic whose
// knots lie at s = -tau_i + integer, so on each unit cell j <= c < j + 1 of the detector g is a
// cubic in the fractional part f = c - j on each of (at most) five pieces
// [sigma_p, sigma_p+1) cut by kappa_i = frac(-tau_i). The coefficients of piece p and offset
// r = j - k, H[p][r], are the same in every cell, so g's coefficients on cell j are the short
// convolution sum_r H[p][r] q_(j - r): per view a table of cubics, then one table look-up and a
// cubic per pixel, instead of about 5 bins x 4 C(s) evaluations. Mathematically the weights of
// pixel_footprint / footprint_weight, from the same closed-form divided differences
// (hat_c_divided_difference); in floating point they agree to about 1e-15 relative.
constexpr int kFootprintPieces = 5;

struct FootprintKernel {
  double tau[4];      // sorted breakpoints relative to the centre (bins), gaps widened as in pixel_footprint
  double inv_ab, inv_cd, scale;
  double sigma[kFootprintPieces + 1];  // piece starts in [0, 1]: 0, sorted kappa_i, 1
  int r_min, R;       // offsets r = j - k in [r_min, r_min + R)
  double inv_den, cu0;  // centre: c = (P00 x + P01 y + P03) * inv_den + cu0
};

// The kernel of one view of a parallel beam on a flat detector (the footprint of pixel_footprint
// with the centre's terms removed); false for other beams or a degenerate view.
PR_HD bool parallel_footprint_kernel(const ViewProjection& V, const Volume& vol, FootprintKernel& K) {
  if (V.curved || V.cone) return false;
  const double den = V.P[2][3];
  if (!(fabs(den) > 0.0) || !isfinite(den)) return false;
  const double nx = V.P[0][0] * 0.5 * vol.sp[0], ny = V.P[0][1] * 0.5 * vol.sp[1];
  double t0 = (-nx - ny) / den, t1 = (nx - ny) / den, t2 = (-nx + ny) / den, t3 = (nx + ny) / den;
  sort4(t0, t1, t2, t3);
  const double area = 0.5 * (t3 + t2 - t1 - t0);
  if (!(area > 0.0) || !isfinite(area)) return false;
  widen_footprint_gaps(t0, t1, t2, t3);
  K.tau[0] = t0;
  K.tau[1] = t1;
  K.tau[2] = t2;
  K.tau[3] = t3;
  K.inv_ab = 1.0 / (t1 - t0);
  K.inv_cd = 1.0 / (t3 - t2);
  K.scale = 1.0 / area;  // the distance weight W is 1 for parallel beams
  double k[4];
  for (int i = 0; i < 4; ++i) k[i] = -K.tau[i] - floor(-K.tau[i]);
  sort2(k[0], k[1]);
  sort2(k[2], k[3]);
  sort2(k[0], k[2]);
  sort2(k[1], k[3]);
  sort2(k[1], k[2]);
  K.sigma[0] = 0.0;
  for (int i = 0; i < 4; ++i) K.sigma[i + 1] = k[i];
  K.sigma[kFootprintPieces] = 1.0;
  // h(s) != 0 only for -1 - tau3 < s < 1 - tau0, with s = f + r, 0 <= f < 1
  K.r_min = (int)floor(-2.0 - t3);
  K.R = (int)ceil(1.0 - t0) - K.r_min + 1;
  K.inv_den = 1.0 / den;
  K.cu0 = V.cu0;
  return true;
}

// Coefficients H[0..3] in t = f - sigma_p of h(f + r) on piece p of kernel K.
PR_HD void footprint_piece(const FootprintKernel& K, int p, int r, double* H) {
  const double mid = 0.5 * (K.sigma[p] + K.sigma[p + 1]) + r, s = K.sigma[p] + r;
  int reg[4];
  for (int i = 0; i < 4; ++i) reg[i] = hat_c_region(mid + K.tau[i]);
  double cd[4], ab[4];
  hat_c_divided_difference(s + K.tau[2], s + K.tau[3], reg[2], reg[3], K.inv_cd, cd);
  hat_c_divided_difference(s + K.tau[0], s + K.tau[1], reg[0], reg[1], K.inv_ab, ab);
  for (int n = 0; n < 4; ++n) H[n] = K.scale * (cd[n] - ab[n]);
}

}  // namespace pr
