// precisionrecon: CUDA X-ray transform, its exact adjoint, and the voxel-driven (FBP/FDK)
// back-projector, from the same header math as the CPU library.
//
// Plain C ABI, no torch headers: the caller passes device pointers and torch's current
// stream (cudaStream_t as void*). Every launch goes on that stream; there are no host
// copies, no synchronisation and no allocations (outputs are provided by the caller), so
// the calls are safe inside CUDA graphs.
//
// Ops: 0 Joseph forward (one thread per ray), 1 Joseph adjoint (2-D: one thread per ray
// with atomics; 3-D, deterministic mode and half precision: one thread per voxel
// gathering the exactly transposed weights, no atomics), 2 voxel-driven back-projection (one thread per voxel), 3 its transpose (one
// thread per voxel with atomics, or -- deterministic -- one thread per view), 4 geometry
// sensitivities of the projection (one thread per ray).
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "xray_cuda_kernels.h"

namespace {

using namespace pr;

constexpr int kThreads = 256;
constexpr int kViewTile = 32;  // view set-ups staged in shared memory per block

struct Args {
  Volume vol;
  Detector det;
  const double* vecs;
  int nviews;
  int64_t batch, nrays, nvox;
  int weighted;
};

__device__ __forceinline__ int batch_chunk(const Args& a, int& nb) {
  const int b0 = blockIdx.y * kMaxNB;
  nb = (int)(a.batch - b0 < kMaxNB ? a.batch - b0 : kMaxNB);
  return b0;
}

template <int DIM, typename T>
__global__ void k_forward(const T* x, T* y, Args a) {
  const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= a.nrays) return;
  int nb;
  const int b0 = batch_chunk(a, nb);
  joseph_forward_ray<DIM, T>(r, b0, nb, x, y, a.vol, a.det, a.vecs, a.nrays);
}

template <int DIM, typename T>
__global__ void k_sensitivity(const T* x, T* out, Args a) {
  const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= a.nrays) return;
  int nb;
  const int b0 = batch_chunk(a, nb);
  joseph_sensitivity_ray<DIM, T>(r, b0, nb, x, out, a.vol, a.det, a.vecs, a.nrays);
}

template <int DIM, typename T>
__global__ void k_adjoint_scatter(const T* y, T* x, Args a) {
  const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= a.nrays) return;
  int nb;
  const int b0 = batch_chunk(a, nb);
  joseph_adjoint_ray<DIM, T>(r, b0, nb, y, x, a.vol, a.det, a.vecs, a.nrays);
}

template <int DIM, typename T>
__global__ void k_adjoint_gather(const T* y, T* x, Args a) {
  const int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (v >= a.nvox) return;
  int nb;
  const int b0 = batch_chunk(a, nb);
  joseph_adjoint_voxel<DIM, T>(v, b0, nb, y, x, a.vol, a.det, a.vecs, a.nviews);
}

__device__ __forceinline__ void voxel_index(const Volume& vol, int64_t v, int* q) {
  q[0] = (int)(v % vol.n[0]);
  q[1] = (int)((v / vol.n[0]) % vol.n[1]);
  q[2] = (int)(v / ((int64_t)vol.n[0] * vol.n[1]));
}

template <int DIM>
__device__ __forceinline__ void stage_views(const Args& a, int v0, ViewProjection* sv) {
  __syncthreads();
  if (threadIdx.x < kViewTile && v0 + (int)threadIdx.x < a.nviews)
    view_projection<DIM>(a.vecs + (int64_t)(v0 + threadIdx.x) * view_stride(a.det), a.det, a.weighted,
                         sv[threadIdx.x]);
  __syncthreads();
}

template <int DIM, typename T>
__global__ void k_vbp_gather(const T* q, T* x, Args a) {
  __shared__ ViewProjection sv[kViewTile];
  const int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const bool active = v < a.nvox;
  int nb;
  const int b0 = batch_chunk(a, nb);
  int q3[3] = {0, 0, 0};
  if (active) voxel_index(a.vol, v, q3);
  typename AccOf<T>::type acc[kMaxNB];
  for (int b = 0; b < kMaxNB; ++b) acc[b] = 0;
  for (int v0 = 0; v0 < a.nviews; v0 += kViewTile) {
    stage_views<DIM>(a, v0, sv);  // every thread reaches the barriers
    const int nv = a.nviews - v0 < kViewTile ? a.nviews - v0 : kViewTile;
    if (active)
      for (int k = 0; k < nv; ++k)
        vbp_gather_view<DIM, T>(sv[k], a.det, a.vol, q3[0], q3[1], q3[2], v0 + k, b0, nb, q, a.nrays, acc);
  }
  if (active)
    for (int b = 0; b < nb; ++b) store_acc(x + (int64_t)(b0 + b) * a.nvox + v, acc[b]);
}

template <int DIM, typename T>
__global__ void k_vbp_scatter(const T* x, T* q, Args a) {
  __shared__ ViewProjection sv[kViewTile];
  const int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const bool active = v < a.nvox;
  int nb;
  const int b0 = batch_chunk(a, nb);
  int q3[3] = {0, 0, 0};
  if (active) voxel_index(a.vol, v, q3);
  for (int v0 = 0; v0 < a.nviews; v0 += kViewTile) {
    stage_views<DIM>(a, v0, sv);
    const int nv = a.nviews - v0 < kViewTile ? a.nviews - v0 : kViewTile;
    if (active)
      for (int k = 0; k < nv; ++k)
        vbp_scatter_view<DIM, T, true>(sv[k], a.det, a.vol, q3[0], q3[1], q3[2], v0 + k, b0, nb, x, v, a.nvox, q,
                                       a.nrays);
  }
}

// Deterministic transpose: one thread owns one view of one batch chunk (slow; plain adds).
template <int DIM, typename T>
__global__ void k_vbp_scatter_serial(const T* x, T* q, Args a) {
  const int view = blockIdx.x * blockDim.x + threadIdx.x;
  if (view >= a.nviews) return;
  int nb;
  const int b0 = batch_chunk(a, nb);
  ViewProjection V;
  view_projection<DIM>(a.vecs + (int64_t)view * view_stride(a.det), a.det, a.weighted, V);
  for (int64_t v = 0; v < a.nvox; ++v) {
    int q3[3];
    voxel_index(a.vol, v, q3);
    vbp_scatter_view<DIM, T, false>(V, a.det, a.vol, q3[0], q3[1], q3[2], view, b0, nb, x, v, a.nvox, q, a.nrays);
  }
}

template <int DIM, typename T>
int launch(int op, int deterministic, const void* in_, void* out_, const Args& a, cudaStream_t stream) {
  const T* in = static_cast<const T*>(in_);
  T* out = static_cast<T*>(out_);
  const int64_t nchunks = (a.batch + kMaxNB - 1) / kMaxNB;
  if (nchunks > 65535) return 6;
  auto grid = [&](int64_t n) { return dim3((unsigned)((n + kThreads - 1) / kThreads), (unsigned)nchunks); };
  switch (op) {
    case 0:
      k_forward<DIM, T><<<grid(a.nrays), kThreads, 0, stream>>>(in, out, a);
      break;
    case 1:
      // 3-D: the gather by default (a 3-D scatter issues 4 atomics per sample per ray).
      if (deterministic || DIM == 3) {
        k_adjoint_gather<DIM, T><<<grid(a.nvox), kThreads, 0, stream>>>(in, out, a);
      } else {
        if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
          cudaMemsetAsync(out, 0, sizeof(T) * a.batch * a.nvox, stream);
          k_adjoint_scatter<DIM, T><<<grid(a.nrays), kThreads, 0, stream>>>(in, out, a);
        } else {
          return 7;  // half precision: deterministic gather only
        }
      }
      break;
    case 2:
      k_vbp_gather<DIM, T><<<grid(a.nvox), kThreads, 0, stream>>>(in, out, a);
      break;
    case 3:
      if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
        cudaMemsetAsync(out, 0, sizeof(T) * a.batch * a.nrays, stream);
        if (deterministic)
          k_vbp_scatter_serial<DIM, T><<<grid(a.nviews), kThreads, 0, stream>>>(in, out, a);
        else
          k_vbp_scatter<DIM, T><<<grid(a.nvox), kThreads, 0, stream>>>(in, out, a);
      } else {
        return 7;
      }
      break;
    case 4:
      k_sensitivity<DIM, T><<<grid(a.nrays), kThreads, 0, stream>>>(in, out, a);
      break;
    default:
      return 8;
  }
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? 0 : 1000 + (int)err;
}

template <typename T>
int dispatch(int op, int deterministic, const void* in, void* out, Args& a, int ndim, cudaStream_t stream) {
  return ndim == 2 ? launch<2, T>(op, deterministic, in, out, a, stream)
                   : launch<3, T>(op, deterministic, in, out, a, stream);
}

}  // namespace

extern "C" {

// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16. Pointers are device pointers;
// `vecs` holds nviews float64 view vectors; `stream` is a cudaStream_t (0: legacy).
// Returns 0, a geometry/argument error code (< 1000) or 1000 + the CUDA error.
int pr_cuda_launch(int op, int dtype, const void* in, void* out, int64_t batch, int ndim, const int* vol_n,
                   const double* vol_sp, const double* vol_off, const double* vecs, int nviews, int det_nu,
                   int det_nv, int beam, int curved, int weighted, int deterministic, void* stream) {
  Args a;
  const int err = make_geometry(ndim, vol_n, vol_sp, vol_off, nviews, det_nu, det_nv, beam, curved, a.vol, a.det);
  if (err) return err;
  if (batch < 0) return 5;
  if (batch == 0) return 0;
  a.vecs = vecs;
  a.nviews = nviews;
  a.batch = batch;
  a.nrays = (int64_t)nviews * det_nu * det_nv;
  a.nvox = (int64_t)a.vol.n[0] * a.vol.n[1] * a.vol.n[2];
  a.weighted = weighted;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case 0:
      return dispatch<float>(op, deterministic, in, out, a, ndim, s);
    case 1:
      return dispatch<double>(op, deterministic, in, out, a, ndim, s);
    case 2:
      return dispatch<__half>(op, deterministic, in, out, a, ndim, s);
    case 3:
      return dispatch<__nv_bfloat16>(op, deterministic, in, out, a, ndim, s);
    default:
      return 9;
  }
}

const char* pr_cuda_error_string(int code) {
  return code >= 1000 ? cudaGetErrorString((cudaError_t)(code - 1000)) : "invalid arguments";
}

// Number of visible CUDA devices (0 when there is no driver or device).
int pr_cuda_device_count(void) {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // extern "C"
