#include "simd/level.h"

#include <cstdlib>
#include <stdexcept>

namespace dtrain {

bool simd_level_supported(SimdLevel s) {
  if (s == SimdLevel::scalar) return true;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (s == SimdLevel::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f");
}

const char* simd_level_name(SimdLevel s) {
  switch (s) {
    case SimdLevel::avx512:
      return "avx512";
    case SimdLevel::avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

SimdLevel choose_simd_level(const std::string& request, SimdLevel widest_built) {
  std::string want = request;
  if (want.empty() || want == "auto") {
    const char* env = std::getenv("DTRAIN_SIMD");
    want = env && *env ? env : "auto";
  }
  SimdLevel s;
  if (want == "auto") {
    s = widest_built;
    while (!simd_level_supported(s)) s = static_cast<SimdLevel>(static_cast<int>(s) - 1);
    return s;
  }
  if (want == "scalar") {
    s = SimdLevel::scalar;
  } else if (want == "avx2") {
    s = SimdLevel::avx2;
  } else if (want == "avx512") {
    s = SimdLevel::avx512;
  } else {
    throw std::runtime_error("unknown SIMD path '" + want + "': use auto, scalar, avx2 or avx512");
  }
  if (!simd_level_supported(s)) {
    throw std::runtime_error(std::string("DTRAIN_SIMD=") + want + " but this CPU lacks " +
                             (s == SimdLevel::avx2 ? "AVX2/FMA/F16C" : "AVX-512F"));
  }
  return static_cast<int>(s) > static_cast<int>(widest_built) ? widest_built : s;
}

}  // namespace dtrain
