// The one reading of a SIMD path request, shared by the kernel families that dispatch at run time (the
// optimizer's, the layers'): "auto" | "scalar" | "avx2" | "avx512", where "auto" (or empty) follows
// DTRAIN_SIMD and then the CPU. A family built up to a narrower path caps a wider request at its widest.
#pragma once
#include <string>

namespace dtrain {

enum class SimdLevel { scalar = 0, avx2 = 1, avx512 = 2 };

// avx2 means AVX2 + FMA + F16C; avx512 means AVX-512F on top of that.
bool simd_level_supported(SimdLevel s);
const char* simd_level_name(SimdLevel s);
// Throws std::runtime_error for an unknown word or a forced path this CPU lacks.
SimdLevel choose_simd_level(const std::string& request, SimdLevel widest_built);

}  // namespace dtrain
