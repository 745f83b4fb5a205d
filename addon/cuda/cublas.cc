// GEMM through cuBLAS, opened with dlopen on first use like NCCL (nccl_loader.cc), so the part builds
// without cuBLAS's headers and loads on machines without it; only the GEMM calls need it. The few
// declarations below follow cuBLAS's public ABI (cublas_api.h, stable since CUDA 11).
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <library_types.h>
#include <stdlib.h>

#include <climits>
#include <mutex>
#include <string>
#include <vector>

#include "dtrain_cuda.h"
#include "errors.h"
#include "library_search.h"

using dtrain::LibraryCandidates;
using dtrain::OpenFirstLibrary;
using dtrain::SetError;

namespace {
typedef struct cublasContext* cublasHandle_t;
typedef int cublasStatus_t;  // CUBLAS_STATUS_SUCCESS = 0
constexpr int kOpN = 0, kOpT = 1;
constexpr int kCompute32F = 68;  // CUBLAS_COMPUTE_32F: fp32 accumulation, no TF32
constexpr int kGemmDefault = -1;

struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*gemmEx)(cublasHandle_t, int, int, int, int, int, const void*, const void*, cudaDataType_t, int,
                           const void*, cudaDataType_t, int, const void*, void*, cudaDataType_t, int, int,
                           int) = nullptr;
  const char* (*statusString)(cublasStatus_t) = nullptr;  // optional (cuBLAS 11.4+)
};

CublasApi g_api;
bool g_loaded = false;
std::string g_path, g_error;
std::once_flag g_once;
std::mutex g_handles_mu;
cublasHandle_t g_handles[64] = {};

// DTRAIN_CUBLAS_PATH, the loader's path (CUDA 13, then 12), the toolkit, then pip's nvidia-cublas wheels.
std::vector<std::string> Candidates(const char* explicit_path) {
  return LibraryCandidates({explicit_path,
                            "DTRAIN_CUBLAS_PATH",
                            {"libcublas.so.13", "libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so"},
                            {"nvidia/cu13/lib/libcublas.so.*", "nvidia/cublas/lib/libcublas.so.*"}});
}

void DoLoad(const char* explicit_path) {
  std::string tried;
  // libcublas finds its libcublasLt through its own RUNPATH (the toolkit's folder or the wheel's).
  void* lib = OpenFirstLibrary(Candidates(explicit_path), &g_path, &tried);
  if (!lib) {
    g_error = "libcublas not found (set DTRAIN_CUBLAS_PATH or pip install nvidia-cublas-cu12): " + tried;
    return;
  }
  CublasApi a;
  a.create = reinterpret_cast<decltype(a.create)>(dlsym(lib, "cublasCreate_v2"));
  a.gemmEx = reinterpret_cast<decltype(a.gemmEx)>(dlsym(lib, "cublasGemmEx"));
  a.statusString = reinterpret_cast<decltype(a.statusString)>(dlsym(lib, "cublasGetStatusString"));
  if (!a.create || !a.gemmEx) {
    g_error = g_path + " lacks " + (a.create ? "cublasGemmEx" : "cublasCreate_v2") + ": not a usable cuBLAS";
    dlclose(lib);
    return;
  }
  g_api = a;
  g_loaded = true;
}

int Load(const char* path) {
  std::call_once(g_once, [&] { DoLoad(path); });
  return g_loaded ? 0 : SetError(DTRAIN_CUDA_ECUBLAS, g_error);
}

int CublasError(const char* what, cublasStatus_t s) {
  const char* text = g_api.statusString ? g_api.statusString(s) : nullptr;
  return SetError(DTRAIN_CUDA_ECUBLAS, std::string(what) + " failed: " + (text ? text : "status " + std::to_string(s)));
}

// One handle per device, made on first use with that device current; kept for the process's life.
int HandleFor(cublasHandle_t* out) {
  int dev = 0;
  DTRAIN_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return SetError(DTRAIN_CUDA_EARG, "device index out of range");
  std::lock_guard<std::mutex> lock(g_handles_mu);
  if (!g_handles[dev])
    if (cublasStatus_t s = g_api.create(&g_handles[dev])) return CublasError("cublasCreate", s);
  *out = g_handles[dev];
  return 0;
}
}  // namespace

extern "C" {
int dtrain_cublas_load(const char* path) { return Load(path); }

const char* dtrain_cublas_loaded_path(void) { return g_loaded ? g_path.c_str() : ""; }

int dtrain_cuda_gemm(const void* a, const void* b, float* c, size_t m, size_t n, size_t k, int flags, int in_dtype) {
  if (in_dtype != DTRAIN_F32 && in_dtype != DTRAIN_BF16)
    return SetError(DTRAIN_CUDA_EARG, "gemm: inputs must be fp32 or bf16");
  if (flags & ~(DTRAIN_GEMM_TRANS_A | DTRAIN_GEMM_TRANS_B | DTRAIN_GEMM_ACCUMULATE))
    return SetError(DTRAIN_CUDA_EARG, "gemm: unknown flags");
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return SetError(DTRAIN_CUDA_EARG, "gemm: a dimension exceeds 2^31 - 1");
  if (m == 0 || n == 0) return 0;
  const bool ta = flags & DTRAIN_GEMM_TRANS_A, tb = flags & DTRAIN_GEMM_TRANS_B;
  const float alpha = 1.0f, beta = (flags & DTRAIN_GEMM_ACCUMULATE) ? 1.0f : 0.0f;
  if (!c || (k && (!a || !b))) return SetError(DTRAIN_CUDA_EARG, "gemm: null operand");
  if (int e = Load(nullptr)) return e;
  cublasHandle_t h;
  if (int e = HandleFor(&h)) return e;
  // cuBLAS is column-major: a row-major C (m×n) is a column-major Cᵀ (n×m) = op(B)ᵀ·op(A)ᵀ, so the operands
  // swap places and keep their transposes; each leading dimension is its stored row length.
  const cudaDataType_t t = in_dtype == DTRAIN_BF16 ? CUDA_R_16BF : CUDA_R_32F;
  const int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : n);
  if (cublasStatus_t s =
          g_api.gemmEx(h, tb ? kOpT : kOpN, ta ? kOpT : kOpN, (int)n, (int)m, (int)k, &alpha, b, t, ldb > 0 ? ldb : 1,
                       a, t, lda > 0 ? lda : 1, &beta, c, CUDA_R_32F, (int)n, kCompute32F, kGemmDefault))
    return CublasError("cublasGemmEx", s);
  return 0;
}
}  // extern "C"
