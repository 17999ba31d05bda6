// precisionrecon: CPU (OpenMP) geometry sensitivities of the Joseph projector.
//
// The per-ray body is joseph_sensitivity_ray() of xray_cuda_kernels.h, the same function
// the CUDA kernel runs, in an OpenMP loop over rays (one ray per iteration, all batch
// chunks inside), so each output element is written by one thread.
#include <omp.h>
#include <stdint.h>

#include "xray_cuda_kernels.h"

namespace {

using namespace pr;

template <int DIM, typename T>
void run(const T* x, T* out, int64_t batch, const Volume& vol, const Detector& det, const double* vecs,
         int nviews, int nthreads) {
  const int64_t nrays = (int64_t)nviews * det.nu * det.nv;
#pragma omp parallel for schedule(dynamic, 64) num_threads(nthreads)
  for (int64_t r = 0; r < nrays; ++r)
    for (int64_t b0 = 0; b0 < batch; b0 += kMaxNB) {
      const int nb = (int)(batch - b0 < kMaxNB ? batch - b0 : kMaxNB);
      joseph_sensitivity_ray<DIM, T>(r, (int)b0, nb, x, out, vol, det, vecs, nrays);
    }
}

template <typename T>
int entry(const T* x, T* out, int64_t batch, int ndim, const int* vol_n, const double* vol_sp, const double* vol_off,
          const double* vecs, int nviews, int det_nu, int det_nv, int beam, int curved, int nthreads) {
  Volume vol;
  Detector det;
  const int err = make_geometry(ndim, vol_n, vol_sp, vol_off, nviews, det_nu, det_nv, beam, curved, vol, det);
  if (err) return err;
  if (batch < 0) return 5;
  if (nthreads < 1) nthreads = 1;
  if (ndim == 2)
    run<2, T>(x, out, batch, vol, det, vecs, nviews, nthreads);
  else
    run<3, T>(x, out, batch, vol, det, vecs, nviews, nthreads);
  return 0;
}

}  // namespace

extern "C" {
// x: (batch, [nz,] ny, nx) -> out: (batch, nviews * det_nv * det_nu, K), K = 2 (2-D) or 4 (3-D).
int pr_xray_sensitivity_f32(const float* x, float* out, int64_t batch, int ndim, const int* vol_n,
                            const double* vol_sp, const double* vol_off, const double* vecs, int nviews, int det_nu,
                            int det_nv, int beam, int curved, int nthreads) {
  return entry<float>(x, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                      nthreads);
}
int pr_xray_sensitivity_f64(const double* x, double* out, int64_t batch, int ndim, const int* vol_n,
                            const double* vol_sp, const double* vol_off, const double* vecs, int nviews, int det_nu,
                            int det_nv, int beam, int curved, int nthreads) {
  return entry<double>(x, out, batch, ndim, vol_n, vol_sp, vol_off, vecs, nviews, det_nu, det_nv, beam, curved,
                       nthreads);
}
}
