// precisionrecon: CPU (OpenMP) voxel-driven back-projection (FBP/FDK) and its transpose.
//
// The taps come from row_forms() / row_taps() in xray_math.h, shared with CUDA: one set-up
// per voxel row and view, then a division per voxel (flat detectors). The back-projection
// gathers into one image row at a time (threads own rows); the transpose (voxel-driven
// forward projection) scatters, with threads owning views. Neither uses atomics, so
// results do not depend on the number of threads. 2-D with flag bit 1: the pixel-footprint
// weights of pixel_footprint() and footprint_weight() instead of the point taps.
#include <omp.h>
#include <stdint.h>

#include <atomic>
#include <vector>

#include "xray_math.h"

namespace pr {
extern std::atomic<int> g_cancel;  // xray_cpu.cpp: a cancellation request (Ctrl-C)
constexpr int kCancelled = 98;
}  // namespace pr

namespace {

using pr::Detector;
using pr::Footprint;
using pr::RowForms;
using pr::ViewProjection;
using pr::Volume;
using pr::VoxelTaps;

template <int DIM>
std::vector<ViewProjection> views(const double* vecs, int nviews, const Detector& det, int flags) {
  std::vector<ViewProjection> out(nviews);
  const int stride = DIM == 2 ? 6 : 12;
  for (int i = 0; i < nviews; ++i) pr::view_projection<DIM>(vecs + (int64_t)i * stride, det, flags, out[i]);
  return out;
}

// q: (batch, nviews, nv, nu) -> x: (batch, nz, ny, nx)
template <typename T, int DIM>
void backproject(const T* q, T* x, int64_t batch, const Volume& vol, const std::vector<ViewProjection>& vp,
                 const Detector& det, int nthreads) {
  const int nx = vol.n[0], ny = vol.n[1], nz = vol.n[2];
  const int64_t nvox = (int64_t)nx * ny * nz;
  const int64_t proj = (int64_t)vp.size() * det.nu * det.nv;
  const int64_t rows = (int64_t)ny * nz;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<double> acc((size_t)nx * batch);
#pragma omp for schedule(dynamic, 1)
    for (int64_t row = 0; row < rows; ++row) {
      if (pr::g_cancel.load(std::memory_order_relaxed)) continue;  // the caller discards the output
      const int iy = (int)(row % ny), iz = (int)(row / ny);
      for (auto& a : acc) a = 0.0;
      for (size_t i = 0; i < vp.size(); ++i) {
        const int64_t base = (int64_t)i * det.nu * det.nv;
        if (DIM == 2 && vp[i].footprint) {
          for (int ix = 0; ix < nx; ++ix) {
            Footprint P;
            if (!pr::pixel_footprint(vp[i], det, vol, ix, iy, P)) continue;
            for (int k = P.k0; k <= P.k1; ++k) {
              const double w = pr::footprint_weight(P, k);
              for (int64_t b = 0; b < batch; ++b) acc[(size_t)b * nx + ix] += w * (double)q[b * proj + base + k];
            }
          }
          continue;
        }
        RowForms F;
        pr::row_forms(vp[i], vol, iy, iz, F);
        for (int ix = 0; ix < nx; ++ix) {
          VoxelTaps t;
          if (!pr::row_taps<DIM>(vp[i], det, vol, F, ix, t)) continue;
          const int64_t k0 = base + (int64_t)t.iv * det.nu + t.iu;
          for (int64_t b = 0; b < batch; ++b) {
            const T* qb = q + b * proj;
            double s = 0.0;
            if (t.c[0] != 0.0) s += t.c[0] * (double)qb[k0];
            if (t.c[1] != 0.0) s += t.c[1] * (double)qb[k0 + 1];
            if (DIM == 3) {
              if (t.c[2] != 0.0) s += t.c[2] * (double)qb[k0 + det.nu];
              if (t.c[3] != 0.0) s += t.c[3] * (double)qb[k0 + det.nu + 1];
            }
            acc[(size_t)b * nx + ix] += s;
          }
        }
      }
      for (int64_t b = 0; b < batch; ++b)
        for (int ix = 0; ix < nx; ++ix) x[b * nvox + row * nx + ix] = (T)acc[(size_t)b * nx + ix];
    }
  }
}

// x: (batch, nz, ny, nx) -> q: (batch, nviews, nv, nu), the exact transpose of backproject.
template <typename T, int DIM>
void project(const T* x, T* q, int64_t batch, const Volume& vol, const std::vector<ViewProjection>& vp,
             const Detector& det, int nthreads) {
  const int nx = vol.n[0], ny = vol.n[1], nz = vol.n[2];
  const int64_t nvox = (int64_t)nx * ny * nz;
  const int64_t per_view = (int64_t)det.nu * det.nv;
  const int64_t proj = (int64_t)vp.size() * per_view;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<double> acc((size_t)(per_view * batch));
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < (int64_t)vp.size(); ++i) {
      for (auto& a : acc) a = 0.0;
      for (int iz = 0; iz < nz; ++iz)
        for (int iy = 0; iy < ny; ++iy) {
          if (DIM == 2 && vp[i].footprint) {
            for (int ix = 0; ix < nx; ++ix) {
              Footprint P;
              if (!pr::pixel_footprint(vp[i], det, vol, ix, iy, P)) continue;
              const int64_t voxel = (int64_t)iy * nx + ix;
              for (int k = P.k0; k <= P.k1; ++k) {
                const double w = pr::footprint_weight(P, k);
                for (int64_t b = 0; b < batch; ++b) acc[(size_t)(b * per_view + k)] += w * (double)x[b * nvox + voxel];
              }
            }
            continue;
          }
          RowForms F;
          pr::row_forms(vp[i], vol, iy, iz, F);
          for (int ix = 0; ix < nx; ++ix) {
            VoxelTaps t;
            if (!pr::row_taps<DIM>(vp[i], det, vol, F, ix, t)) continue;
            const int64_t k0 = (int64_t)t.iv * det.nu + t.iu;
            const int64_t voxel = ((int64_t)iz * ny + iy) * nx + ix;
            for (int64_t b = 0; b < batch; ++b) {
              const double xv = (double)x[b * nvox + voxel];
              double* ab = acc.data() + b * per_view;
              if (t.c[0] != 0.0) ab[k0] += t.c[0] * xv;
              if (t.c[1] != 0.0) ab[k0 + 1] += t.c[1] * xv;
              if (DIM == 3) {
                if (t.c[2] != 0.0) ab[k0 + det.nu] += t.c[2] * xv;
                if (t.c[3] != 0.0) ab[k0 + det.nu + 1] += t.c[3] * xv;
              }
            }
          }
        }
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < per_view; ++k) q[b * proj + i * per_view + k] = (T)acc[(size_t)(b * per_view + k)];
    }
  }
}

template <typename T>
int entry(bool transpose, const T* in, T* out, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
          const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam, int curved,
          int flags, int nthreads) {
  Volume vol;
  Detector det;
  const int err = pr::make_geometry(ndim, vol_n, vol_sp, vol_off, nviews, det_nu, det_nv, beam, curved, vol, det);
  if (err) return err;
  if (batch < 0) return 5;
  if (nthreads < 1) nthreads = 1;
  if (ndim == 2) {
    const auto vp = views<2>(vecs, nviews, det, flags);
    if (transpose)
      project<T, 2>(in, out, batch, vol, vp, det, nthreads);
    else
      backproject<T, 2>(in, out, batch, vol, vp, det, nthreads);
  } else {
    const auto vp = views<3>(vecs, nviews, det, flags);
    if (transpose)
      project<T, 3>(in, out, batch, vol, vp, det, nthreads);
    else
      backproject<T, 3>(in, out, batch, vol, vp, det, nthreads);
  }
  return !transpose && pr::g_cancel.load(std::memory_order_relaxed) ? pr::kCancelled : 0;
}

}  // namespace

extern "C" {

// Back-projection q: (batch, nviews, det_nv, det_nu) -> x: (batch, [nz,] ny, nx). flags: bit 0
// the distance weight (divergent beams), bit 1 pixel-footprint weights (2-D only).
int pr_vbp_backproject_f32(const float* q, float* x, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
                           const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam,
                           int curved, int flags, int nthreads) {
  return entry<float>(false, q, x, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      flags, nthreads);
}
int pr_vbp_backproject_f64(const double* q, double* x, int64_t batch, int ndim, const int* vol_n,
                           const double* vol_sp, const double* vol_off, const double* vecs, int nviews, int det_nu,
                           int det_nv, int beam, int curved, int flags, int nthreads) {
  return entry<double>(false, q, x, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       flags, nthreads);
}
// Its transpose x -> q.
int pr_vbp_project_f32(const float* x, float* q, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
                       const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam,
                       int curved, int flags, int nthreads) {
  return entry<float>(true, x, q, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      flags, nthreads);
}
int pr_vbp_project_f64(const double* x, double* q, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
                       const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam,
                       int curved, int flags, int nthreads) {
  return entry<double>(true, x, q, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       flags, nthreads);
}

}  // extern "C"
