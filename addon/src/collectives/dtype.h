// Element types and reduction operators shared by every transport and algorithm.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dtrain {

enum class DType : uint8_t { f32 = 0, f64 = 1, i32 = 2, i64 = 3, bf16 = 4, f16 = 5 };
enum class RedOp : uint8_t { sum = 0, avg = 1, max = 2, min = 3, prod = 4 };

inline size_t dtypeSize(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::bf16:
    case DType::f16:
      return 2;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
  }
  return "?";
}

inline const char* redOpName(RedOp op) {
  switch (op) {
    case RedOp::sum:
      return "sum";
    case RedOp::avg:
      return "avg";
    case RedOp::max:
      return "max";
    case RedOp::min:
      return "min";
    case RedOp::prod:
      return "prod";
  }
  return "?";
}

// Part i of `count` elements cut into `parts` nearly equal slices, in order.
struct Slice {
  size_t begin, count;
};
inline Slice sliceOf(size_t count, int parts, int i) {
  size_t b = count * size_t(i) / size_t(parts), e = count * size_t(i + 1) / size_t(parts);
  return {b, e - b};
}

}  // namespace dtrain
