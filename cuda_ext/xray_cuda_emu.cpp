// precisionrecon: host emulation of the CUDA kernels (tests only).
//
// Runs the per-thread bodies of xray_cuda_kernels.h in serial loops with the same batch
// chunking as xray_cuda.cu, so the CUDA logic is checked against the CPU library on
// machines without a GPU. Atomic adds become plain adds (serial execution).
#include <stdint.h>
#include <string.h>

#include "xray_cuda_kernels.h"

namespace {

using namespace pr;

template <int DIM, typename T>
void run(int op, int deterministic, const T* in, T* out, int64_t batch, const Volume& vol, const Detector& det,
         const double* vecs, int nviews, int weighted) {
  const int64_t nrays = (int64_t)nviews * det.nu * det.nv;
  const int64_t nvox = (int64_t)vol.n[0] * vol.n[1] * vol.n[2];
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxNB) {
    const int nb = (int)(batch - b0 < kMaxNB ? batch - b0 : kMaxNB);
    if (op == 0) {
      for (int64_t r = 0; r < nrays; ++r) joseph_forward_ray<DIM, T>(r, (int)b0, nb, in, out, vol, det, vecs, nrays);
    } else if (op == 1 && deterministic) {
      for (int64_t v = 0; v < nvox; ++v) joseph_adjoint_voxel<DIM, T>(v, (int)b0, nb, in, out, vol, det, vecs, nviews);
    } else if (op == 1) {
      if (b0 == 0) memset(out, 0, sizeof(T) * batch * nvox);
      for (int64_t r = 0; r < nrays; ++r) joseph_adjoint_ray<DIM, T>(r, (int)b0, nb, in, out, vol, det, vecs, nrays);
    } else if (op == 2) {  // voxel-driven back-projection (gather)
      for (int64_t v = 0; v < nvox; ++v) {
        typename AccOf<T>::type acc[kMaxNB] = {};
        const int ix = (int)(v % vol.n[0]), iy = (int)((v / vol.n[0]) % vol.n[1]);
        const int iz = (int)(v / ((int64_t)vol.n[0] * vol.n[1]));
        for (int view = 0; view < nviews; ++view) {
          ViewProjection V;
          view_projection<DIM>(vecs + (int64_t)view * view_stride(det), det, weighted, V);
          vbp_gather_view<DIM, T>(V, det, vol, ix, iy, iz, view, (int)b0, nb, in, nrays, acc);
        }
        for (int b = 0; b < nb; ++b) out[(b0 + b) * nvox + v] = (T)acc[b];
      }
    } else {  // voxel-driven projection (scatter)
      if (b0 == 0) memset(out, 0, sizeof(T) * batch * nrays);
      for (int view = 0; view < nviews; ++view) {
        ViewProjection V;
        view_projection<DIM>(vecs + (int64_t)view * view_stride(det), det, weighted, V);
        for (int64_t v = 0; v < nvox; ++v) {
          const int ix = (int)(v % vol.n[0]), iy = (int)((v / vol.n[0]) % vol.n[1]);
          const int iz = (int)(v / ((int64_t)vol.n[0] * vol.n[1]));
          if (deterministic)
            vbp_scatter_view<DIM, T, false>(V, det, vol, ix, iy, iz, view, (int)b0, nb, in, v, nvox, out, nrays);
          else
            vbp_scatter_view<DIM, T, true>(V, det, vol, ix, iy, iz, view, (int)b0, nb, in, v, nvox, out, nrays);
        }
      }
    }
  }
}

template <typename T>
int entry(int op, const T* in, T* out, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
          const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam, int curved,
          int weighted, int deterministic) {
  Volume vol;
  Detector det;
  const int err = make_geometry(ndim, vol_n, vol_sp, vol_off, nviews, det_nu, det_nv, beam, curved, vol, det);
  if (err) return err;
  if (ndim == 2)
    run<2, T>(op, deterministic, in, out, batch, vol, det, vecs, nviews, weighted);
  else
    run<3, T>(op, deterministic, in, out, batch, vol, det, vecs, nviews, weighted);
  return 0;
}

}  // namespace

extern "C" {
// op: 0 Joseph forward, 1 Joseph adjoint, 2 voxel-driven back-projection, 3 its transpose.
int pr_emu_f32(int op, const float* in, float* out, int64_t batch, int ndim, const int* vol_n, const double* vol_sp,
               const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv, int beam, int curved,
               int weighted, int deterministic) {
  return entry<float>(op, in, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      weighted, deterministic);
}
int pr_emu_f64(int op, const double* in, double* out, int64_t batch, int ndim, const int* vol_n,
               const double* vol_sp, const double* vol_off, const double* vecs, int nviews, int det_nu, int det_nv,
               int beam, int curved, int weighted, int deterministic) {
  return entry<double>(op, in, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       weighted, deterministic);
}
}
