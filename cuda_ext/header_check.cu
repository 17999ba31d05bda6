// Compile-only check that xray_math.h is valid CUDA (__host__ __device__) code.
// The CUDA projector kernels themselves come with the CUDA issue.
#include "xray_math.h"

__global__ void pr_header_check_kernel(const double* vec, pr::Volume vol, pr::Detector det, double* out) {
  pr::Line L;
  const int iu = threadIdx.x;
  if (pr::ray_line<3>(vec, vol, det, iu, 0, L)) {
    int i;
    double t;
    out[iu] = pr::tap(L.a1 + L.b1 * L.j0, vol.n[L.o1], i, t) ? L.w * t : 0.0;
  }
  if (pr::ray_line<2>(vec, vol, det, iu, 0, L)) out[iu] += L.w;
}
