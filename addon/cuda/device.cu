// Device queries, buffers and the copy reference of the CUDA part's C ABI.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "dtrain_cuda.h"
#include "errors.h"

namespace dtrain {
namespace {
thread_local std::string t_last_error;
}
int SetError(int code, const std::string& message) {
  t_last_error = message;
  return code;
}
}  // namespace dtrain

using dtrain::SetError;

#ifndef DTRAIN_CUDA_ARCHS
#define DTRAIN_CUDA_ARCHS "unknown"
#endif

namespace {
template <typename T>
__global__ void FillKernel(T* p, size_t n, T value) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = value;
}

int GridFor(size_t n) {
  size_t blocks = (n + 255) / 256;
  return (int)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}
}  // namespace

extern "C" {
int dtrain_cuda_abi_version(void) { return DTRAIN_CUDA_ABI_VERSION; }
const char* dtrain_cuda_last_error(void) { return dtrain::t_last_error.c_str(); }
const char* dtrain_cuda_built_archs(void) { return DTRAIN_CUDA_ARCHS; }

int dtrain_cuda_runtime_version(int* version) {
  if (!version) return SetError(DTRAIN_CUDA_EARG, "null version");
  *version = CUDART_VERSION;
  return 0;
}

int dtrain_cuda_driver_version(int* version) {
  if (!version) return SetError(DTRAIN_CUDA_EARG, "null version");
  *version = 0;
  // With no driver installed this reports 0 rather than failing: "no driver" is an answer, not an error.
  cudaError_t e = cudaDriverGetVersion(version);
  if (e != cudaSuccess) *version = 0;
  return 0;
}

int dtrain_cuda_device_count(int* count) {
  if (!count) return SetError(DTRAIN_CUDA_EARG, "null count");
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    *count = 0;
    return SetError(0, cudaGetErrorString(e));
  }
  DTRAIN_CUDA_CHECK(e);
  return 0;
}

int dtrain_cuda_device_name(int device, char* out, size_t cap) {
  if (!out || cap == 0) return SetError(DTRAIN_CUDA_EARG, "null output");
  cudaDeviceProp prop;
  DTRAIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::string name = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
  strncpy(out, name.c_str(), cap - 1);
  out[cap - 1] = 0;
  return 0;
}

int dtrain_cuda_set_device(int device) {
  DTRAIN_CUDA_CHECK(cudaSetDevice(device));
  return 0;
}

int dtrain_cuda_malloc(void** ptr, size_t bytes) {
  if (!ptr) return SetError(DTRAIN_CUDA_EARG, "null pointer");
  DTRAIN_CUDA_CHECK(cudaMalloc(ptr, bytes ? bytes : 1));
  return 0;
}
int dtrain_cuda_free(void* ptr) {
  DTRAIN_CUDA_CHECK(cudaFree(ptr));
  return 0;
}
int dtrain_cuda_h2d(void* dst, const void* src, size_t bytes) {
  DTRAIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return 0;
}
int dtrain_cuda_d2h(void* dst, const void* src, size_t bytes) {
  DTRAIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  return 0;
}
int dtrain_cuda_d2d(void* dst, const void* src, size_t bytes) {
  DTRAIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
  return 0;
}
int dtrain_cuda_synchronize(void) {
  DTRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}

int dtrain_cuda_fill(void* ptr, int dtype, size_t count, double value) {
  if (!ptr && count) return SetError(DTRAIN_CUDA_EARG, "null buffer");
  int grid = GridFor(count);
  switch (dtype) {
    case DTRAIN_F32:
      FillKernel<<<grid, 256>>>((float*)ptr, count, (float)value);
      break;
    case DTRAIN_F64:
      FillKernel<<<grid, 256>>>((double*)ptr, count, value);
      break;
    case DTRAIN_I32:
      FillKernel<<<grid, 256>>>((int32_t*)ptr, count, (int32_t)value);
      break;
    case DTRAIN_I64:
      FillKernel<<<grid, 256>>>((long long*)ptr, count, (long long)value);
      break;
    case DTRAIN_BF16:
      FillKernel<<<grid, 256>>>((__nv_bfloat16*)ptr, count, __float2bfloat16((float)value));
      break;
    case DTRAIN_F16:
      FillKernel<<<grid, 256>>>((__half*)ptr, count, __float2half((float)value));
      break;
    default:
      return SetError(DTRAIN_CUDA_EARG, "unknown dtype " + std::to_string(dtype));
  }
  DTRAIN_CUDA_CHECK(cudaGetLastError());
  DTRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}

int dtrain_cuda_time_copy(void* dst, const void* src, size_t bytes, int iters, float* ms) {
  if (!ms || iters <= 0) return SetError(DTRAIN_CUDA_EARG, "bad timing arguments");
  cudaEvent_t a, b;
  DTRAIN_CUDA_CHECK(cudaEventCreate(&a));
  DTRAIN_CUDA_CHECK(cudaEventCreate(&b));
  DTRAIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  DTRAIN_CUDA_CHECK(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) DTRAIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
  DTRAIN_CUDA_CHECK(cudaEventRecord(b));
  DTRAIN_CUDA_CHECK(cudaEventSynchronize(b));
  DTRAIN_CUDA_CHECK(cudaEventElapsedTime(ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 0;
}
}  // extern "C"
