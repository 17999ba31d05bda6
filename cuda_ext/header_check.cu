// Compile-only check that xray_math.h is valid CUDA (__host__ __device__) code.
// The CUDA projector kernels themselves come with the CUDA issue.
#include "xray_math.h"

__global__ void pr_header_check_kernel(const double* vec, pr::Volume vol, pr::Detector det, double* out) {
  pr::Line L;
  const int iu = threadIdx.x;
  if (pr::ray_line<3>(vec, vol, det, iu, 0, L)) {
    const pr::Sample s = pr::joseph_sample<3>(L, vol, (double)L.j0);
    out[iu] = s.ok ? s.c0 + s.c3 : 0.0;
  }
  if (pr::ray_line<2>(vec, vol, det, iu, 0, L)) out[iu] += L.w;
}
