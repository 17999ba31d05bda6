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

#include <algorithm>
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
  const int stride = pr::view_stride(det);
  for (int i = 0; i < nviews; ++i) pr::view_projection<DIM>(vecs + (int64_t)i * stride, det, flags, out[i]);
  return out;
}

// ---------------------------------------------------------------------------------------
// Parallel-beam footprints (2-D, flat detector): per view a table of cubics (see
// FootprintKernel in xray_math.h), then one look-up and one cubic per pixel, SIMD over the
// pixels of a row. Table layout: plane (p * 4 + n) holds coefficient n of piece p for cells
// j = r_min + jj, jj in [0, cells).
struct FootprintView {
  pr::FootprintKernel K;
  std::vector<double> H;  // H[(p * R + r) * 4 + n], r relative to r_min
  int cells;              // nu + R - 1
};

// The kernels of every view, or an empty vector when a view is not a parallel beam on a flat
// detector (then the general footprint path runs).
std::vector<FootprintView> footprint_views(const std::vector<ViewProjection>& vp, const Volume& vol,
                                           const Detector& det) {
  std::vector<FootprintView> out(vp.size());
  for (size_t i = 0; i < vp.size(); ++i) {
    FootprintView& F = out[i];
    if (!vp[i].footprint || !pr::parallel_footprint_kernel(vp[i], vol, F.K)) return {};
    F.cells = det.nu + F.K.R - 1;
    F.H.assign((size_t)pr::kFootprintPieces * F.K.R * 4, 0.0);
    for (int p = 0; p < pr::kFootprintPieces; ++p)
      for (int r = 0; r < F.K.R; ++r) pr::footprint_piece(F.K, p, F.K.r_min + r, F.H.data() + ((size_t)p * F.K.R + r) * 4);
  }
  return out;
}

inline size_t table_size(const FootprintView& F) { return (size_t)pr::kFootprintPieces * 4 * F.cells; }

// Table of one view from its projection row q (nu bins): plane[jj] = sum_r H[p][r][n] q[jj - r].
template <typename T>
void footprint_table(const FootprintView& F, const T* q, int nu, double* qpad, double* table) {
  const int R = F.K.R, cells = F.cells;
  for (int k = 0; k < nu + 2 * R; ++k) qpad[k] = (k >= R && k < R + nu) ? (double)q[k - R] : 0.0;
  for (int pn = 0; pn < pr::kFootprintPieces * 4; ++pn) {
    double* __restrict plane = table + (size_t)pn * cells;
    for (int jj = 0; jj < cells; ++jj) plane[jj] = 0.0;
    const int p = pn / 4, n = pn % 4;
    for (int r = 0; r < R; ++r) {
      const double h = F.H[((size_t)p * R + r) * 4 + n];
      if (h == 0.0) continue;
      const double* __restrict src = qpad + R - r;
#pragma omp simd
      for (int jj = 0; jj < cells; ++jj) plane[jj] += h * src[jj];
    }
  }
}

// Transpose of footprint_table: q[k] = sum_(p, n, r) H[p][r][n] plane[k + r].
template <typename T>
void footprint_table_transpose(const FootprintView& F, const double* table, int nu, T* q) {
  const int R = F.K.R, cells = F.cells;
  for (int k = 0; k < nu; ++k) {
    double s = 0.0;
    for (int pn = 0; pn < pr::kFootprintPieces * 4; ++pn) {
      const int p = pn / 4, n = pn % 4;
      const double* plane = table + (size_t)pn * cells + k;
      for (int r = 0; r < R; ++r) s += F.H[((size_t)p * R + r) * 4 + n] * plane[r];
    }
    q[k] = (T)s;
  }
}

// What the per-pixel look-up needs, as plain locals (so that the pixel loop vectorises).
struct CellMap {
  double inv_den, cu0, r_min, cells, s1, s2, s3, s4;
  int plane;  // elements per plane

  explicit CellMap(const FootprintView& F)
      : inv_den(F.K.inv_den), cu0(F.K.cu0), r_min((double)F.K.r_min), cells((double)F.cells), s1(F.K.sigma[1]),
        s2(F.K.sigma[2]), s3(F.K.sigma[3]), s4(F.K.sigma[4]), plane(F.cells) {}

  // Detector coordinate of the centre of pixel ix in row iy, affine in ix: c0 + ix * dc.
  inline void row(const ViewProjection& V, const Volume& vol, int iy, double& c0, double& dc) const {
    const double y = (iy - vol.off[1]) * vol.sp[1];
    c0 = (V.P[0][0] * (-vol.off[0] * vol.sp[0]) + (V.P[0][1] * y + V.P[0][3])) * inv_den + cu0;
    dc = V.P[0][0] * vol.sp[0] * inv_den;
  }

  // Table index (plane p * 4 of piece p, cell jj) and local coordinate t of a pixel whose centre
  // projects to c; false outside the table.
  inline bool cell(double c, int& idx, double& t) const {
    const double fj = floor(c), f = c - fj, jj = fj - r_min;
    const bool in = jj >= 0.0 && jj < cells;  // also false for NaN
    // the piece p and its start, as selects (the knots are sorted)
    const bool b1 = f >= s1, b2 = f >= s2, b3 = f >= s3, b4 = f >= s4;
    double start = b1 ? s1 : 0.0;
    start = b2 ? s2 : start;
    start = b3 ? s3 : start;
    start = b4 ? s4 : start;
    t = f - start;
    const int p = (int)b1 + (int)b2 + (int)b3 + (int)b4;
    idx = p * 4 * plane + (int)(in ? jj : 0.0);
    return in;
  }
};

// Add the back-projection of one view (its table) to one image row acc[0..nx).
inline void footprint_row(const FootprintView& F, const ViewProjection& V, const Volume& vol, int iy,
                          const double* table, double* __restrict acc) {
  const CellMap map(F);
  double c0, dc;
  map.row(V, vol, iy, c0, dc);
  const int nx = vol.n[0], cells = F.cells;
  const double *P0 = table, *P1 = table + cells, *P2 = table + 2 * cells, *P3 = table + 3 * cells;
#pragma omp simd
  for (int ix = 0; ix < nx; ++ix) {
    int idx;
    double t;
    const bool in = map.cell(c0 + ix * dc, idx, t);
    const double v = ((P3[idx] * t + P2[idx]) * t + P1[idx]) * t + P0[idx];
    acc[ix] += in ? v : 0.0;
  }
}

// Bytes of (image, view) tables built together: all views of a usual problem at once (256²,
// 360 views: 23 MB), so one call synchronises its threads only a few times. Every barrier
// costs a time slice when another process holds the core of a descheduled thread: blocks
// of 16 tables (23 blocks at 360 views) made 2 threads 6x slower than 1 on a loaded machine.
constexpr size_t kTableBytes = size_t(64) << 20;

// q: (batch, nviews, nu) -> x: (batch, ny, nx), parallel-beam footprints. Blocks of views: the
// tables of a block are built (threads own views), then added to the image (threads own rows);
// every pixel sums its views in order, so the result does not depend on the number of threads.
template <typename T>
void backproject_footprint(const T* q, T* x, int64_t batch, const Volume& vol, const std::vector<ViewProjection>& vp,
                           const std::vector<FootprintView>& fv, const Detector& det, int nthreads) {
  const int nx = vol.n[0], ny = vol.n[1], nu = det.nu, nviews = (int)vp.size();
  const int64_t nvox = (int64_t)nx * ny, proj = (int64_t)nviews * nu;
  size_t tsize = 0;
  int rmax = 0;
  for (const auto& F : fv) {
    tsize = table_size(F) > tsize ? table_size(F) : tsize;
    rmax = F.K.R > rmax ? F.K.R : rmax;
  }
  const size_t per_view = tsize * sizeof(double) * (size_t)batch;
  const int block = (int)std::max<size_t>(1, std::min<size_t>((size_t)nviews, kTableBytes / std::max<size_t>(per_view, 1)));
  std::vector<double> acc((size_t)(batch * nvox), 0.0), tables(tsize * block * batch);
  for (int v0 = 0; v0 < nviews; v0 += block) {
    const int nv = nviews - v0 < block ? nviews - v0 : block;
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<double> qpad((size_t)(nu + 2 * rmax));
#pragma omp for schedule(static)
      for (int64_t bv = 0; bv < batch * nv; ++bv) {
        const int64_t b = bv / nv, v = v0 + bv % nv;
        footprint_table(fv[v], q + b * proj + v * nu, nu, qpad.data(), tables.data() + bv * tsize);
      }
      // this thread's rows [lo, hi), view by view: one view's table and the rows stay in cache
      const int64_t nthr = omp_get_num_threads(), tid = omp_get_thread_num();
      const int64_t lo = ny * batch * tid / nthr, hi = ny * batch * (tid + 1) / nthr;
      for (int v = 0; v < nv; ++v) {
        if (pr::g_cancel.load(std::memory_order_relaxed)) break;  // the caller discards the output
        for (int64_t row = lo; row < hi; ++row) {
          const int64_t b = row / ny;
          const int iy = (int)(row % ny);
          footprint_row(fv[v0 + v], vp[v0 + v], vol, iy, tables.data() + (b * nv + v) * tsize,
                        acc.data() + b * nvox + (int64_t)iy * nx);
        }
      }
#pragma omp barrier
    }
  }
  for (int64_t i = 0; i < batch * nvox; ++i) x[i] = (T)acc[i];
}

// x: (batch, ny, nx) -> q: (batch, nviews, nu), the exact transpose of backproject_footprint
// (threads own views; each pixel scatters x t^n into its cell's plane, then the tables'
// transpose gathers them into bins).
template <typename T>
void project_footprint(const T* x, T* q, int64_t batch, const Volume& vol, const std::vector<ViewProjection>& vp,
                       const std::vector<FootprintView>& fv, const Detector& det, int nthreads) {
  const int nx = vol.n[0], ny = vol.n[1], nu = det.nu, nviews = (int)vp.size();
  const int64_t nvox = (int64_t)nx * ny, proj = (int64_t)nviews * nu;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<double> table;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bv = 0; bv < batch * nviews; ++bv) {
      const int64_t b = bv / nviews, v = bv % nviews;
      const FootprintView& F = fv[v];
      const ViewProjection& V = vp[v];
      const CellMap map(F);
      table.assign(table_size(F), 0.0);
      const int cells = F.cells;
      for (int iy = 0; iy < ny; ++iy) {
        double c0, dc;
        map.row(V, vol, iy, c0, dc);
        const T* xr = x + b * nvox + (int64_t)iy * nx;
        for (int ix = 0; ix < nx; ++ix) {
          int idx;
          double t;
          if (!map.cell(c0 + ix * dc, idx, t)) continue;
          const double xv = (double)xr[ix];
          table[idx] += xv;
          table[idx + cells] += xv * t;
          table[idx + 2 * cells] += (xv * t) * t;
          table[idx + 3 * cells] += ((xv * t) * t) * t;
        }
      }
      footprint_table_transpose(F, table.data(), nu, q + b * proj + v * nu);
    }
  }
}

// Rows are tested in segments of kSegment voxels with row_segment_reaches (3-D): a view of a
// long helix (or any cone that covers only some slices) skips the rows and segments its
// detector cannot reach in v. Skipped voxels would get no tap, so the results are unchanged
// (flag bit 2 turns the test off, to check exactly that and to time it).
constexpr int kSegment = 32;

inline int segment_end(int ix, int nx) { return ix + kSegment - 1 < nx - 1 ? ix + kSegment - 1 : nx - 1; }

// q: (batch, nviews, nv, nu) -> x: (batch, nz, ny, nx)
template <typename T, int DIM>
void backproject(const T* q, T* x, int64_t batch, const Volume& vol, const std::vector<ViewProjection>& vp,
                 const Detector& det, bool all_rows, int nthreads) {
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
        if (!all_rows && !pr::row_segment_reaches<DIM>(vp[i], det, vol, F, 0, nx - 1)) continue;  // the cone misses the row
        for (int ix = 0; ix < nx; ++ix) {
          if (!all_rows && ix % kSegment == 0 && !pr::row_segment_reaches<DIM>(vp[i], det, vol, F, ix, segment_end(ix, nx))) {
            ix = segment_end(ix, nx);  // no voxel of this segment has a tap
            continue;
          }
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
             const Detector& det, bool all_rows, int nthreads) {
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
          if (!all_rows && !pr::row_segment_reaches<DIM>(vp[i], det, vol, F, 0, nx - 1)) continue;  // the cone misses the row
          for (int ix = 0; ix < nx; ++ix) {
            if (!all_rows && ix % kSegment == 0 && !pr::row_segment_reaches<DIM>(vp[i], det, vol, F, ix, segment_end(ix, nx))) {
              ix = segment_end(ix, nx);  // no voxel of this segment has a tap
              continue;
            }
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
  const bool all_rows = (flags >> 2) & 1;
  if (ndim == 2) {
    const auto vp = views<2>(vecs, nviews, det, flags);
    const auto fv = footprint_views(vp, vol, det);
    if (!fv.empty() && batch > 0) {
      if (transpose)
        project_footprint<T>(in, out, batch, vol, vp, fv, det, nthreads);
      else
        backproject_footprint<T>(in, out, batch, vol, vp, fv, det, nthreads);
      return 0;
    }
    if (transpose)
      project<T, 2>(in, out, batch, vol, vp, det, all_rows, nthreads);
    else
      backproject<T, 2>(in, out, batch, vol, vp, det, all_rows, nthreads);
  } else {
    const auto vp = views<3>(vecs, nviews, det, flags);
    if (transpose)
      project<T, 3>(in, out, batch, vol, vp, det, all_rows, nthreads);
    else
      backproject<T, 3>(in, out, batch, vol, vp, det, all_rows, nthreads);
  }
  return !transpose && pr::g_cancel.load(std::memory_order_relaxed) ? pr::kCancelled : 0;
}

}  // namespace

extern "C" {

// Back-projection q: (batch, nviews, det_nv, det_nu) -> x: (batch, [nz,] ny, nx). flags: bit 0
// the distance weight (divergent beams), bit 1 pixel-footprint weights (2-D only), bit 2 no
// skipping of the rows a view cannot reach (the same result, slower: for tests and timings).
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
