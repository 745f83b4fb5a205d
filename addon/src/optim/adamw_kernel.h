// CPU AdamW kernels: one fused pass per element over p, g, m, v (and the fp32 master for 16-bit params),
// with a scalar path and an AVX2+FMA path picked at run time, split over worker threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "optim/adamw_math.h"

namespace dtrain {
namespace adamw {

enum class ElemType { f32, bf16, f16 };
enum class Simd { scalar, avx2 };

struct Arrays {
  void* param = nullptr;  // f32, bf16 or f16
  ElemType param_type = ElemType::f32;
  float* master = nullptr;     // fp32 master copy; required when param_type is 16-bit, else null
  const void* grad = nullptr;  // f32 or the 16-bit type of the params
  ElemType grad_type = ElemType::f32;
  float* m = nullptr;
  float* v = nullptr;
  size_t n = 0;
};

bool simd_supported(Simd s);
// Reads a request as simd/level.h does ("avx512" runs the AVX2 path, the widest built here). Throws
// std::runtime_error when a forced path is unknown or not supported by this CPU.
Simd choose_simd(const std::string& request);
const char* simd_name(Simd s);
// 0 means OMP_NUM_THREADS (1 when unset or invalid).
int choose_threads(int request);

void step(const Arrays& a, const StepConsts& k, Simd simd, int threads);
// Sum of squares in double, the local part of the global gradient norm.
double sum_squares(const void* data, ElemType type, size_t n, Simd simd, int threads);
// Element conversion between f32 and the 16-bit types (either direction, or a plain copy).
void convert(const void* src, ElemType src_type, void* dst, ElemType dst_type, size_t n);

}  // namespace adamw
}  // namespace dtrain
