// The reduction kernels, included once per instruction-set build (reduce_scalar.cc, reduce_avx2.cc):
// the loops are written plainly so the compiler vectorizes them for the target the including file sets.
// Includers include <cstring> and half.h first, outside their namespace.
namespace {

using dtrain::bf16ToF32;
using dtrain::f32ToBf16;
using dtrain::f16ToF32;
using dtrain::f32ToF16;

template <typename T> struct OpSum { static T apply(T a, T b) { return a + b; } };
template <typename T> struct OpProd { static T apply(T a, T b) { return a * b; } };
template <typename T> struct OpMax { static T apply(T a, T b) { return b > a ? b : a; } };
template <typename T> struct OpMin { static T apply(T a, T b) { return b < a ? b : a; } };

// Two inputs is the common case (and the ring's), kept separate so it vectorizes without a temp.
template <typename T, template <typename> class Op>
void reduceNative(T* out, const T* const* ins, int n, size_t count) {
  if (n == 1) {
    if (out != ins[0]) std::memmove(out, ins[0], count * sizeof(T));
    return;
  }
  const T* a = ins[0];
  const T* b = ins[1];
  if (n == 2) {
    for (size_t i = 0; i < count; ++i) out[i] = Op<T>::apply(a[i], b[i]);
    return;
  }
  constexpr size_t kBlock = 2048;  // accumulate a cache-sized block across all inputs
  T acc[kBlock];
  for (size_t base = 0; base < count; base += kBlock) {
    size_t m = count - base < kBlock ? count - base : kBlock;
    for (size_t i = 0; i < m; ++i) acc[i] = Op<T>::apply(a[base + i], b[base + i]);
    for (int k = 2; k < n; ++k) {
      const T* c = ins[k] + base;
      for (size_t i = 0; i < m; ++i) acc[i] = Op<T>::apply(acc[i], c[i]);
    }
    std::memcpy(out + base, acc, m * sizeof(T));
  }
}

template <template <typename> class Op, float (*Load)(uint16_t), uint16_t (*Store)(float)>
void reduceHalf(uint16_t* out, const uint16_t* const* ins, int n, size_t count) {
  constexpr size_t kBlock = 2048;
  float acc[kBlock];
  for (size_t base = 0; base < count; base += kBlock) {
    size_t m = count - base < kBlock ? count - base : kBlock;
    const uint16_t* a = ins[0] + base;
    for (size_t i = 0; i < m; ++i) acc[i] = Load(a[i]);
    for (int k = 1; k < n; ++k) {
      const uint16_t* c = ins[k] + base;
      for (size_t i = 0; i < m; ++i) acc[i] = Op<float>::apply(acc[i], Load(c[i]));
    }
    for (size_t i = 0; i < m; ++i) out[base + i] = Store(acc[i]);
  }
}

template <typename T>
void dispatchOp(void* out, const void* const* ins, int n, size_t count, dtrain::RedOp op) {
  T* o = static_cast<T*>(out);
  const T* const* in = reinterpret_cast<const T* const*>(ins);
  switch (op) {
    case dtrain::RedOp::sum: case dtrain::RedOp::avg: return reduceNative<T, OpSum>(o, in, n, count);
    case dtrain::RedOp::prod: return reduceNative<T, OpProd>(o, in, n, count);
    case dtrain::RedOp::max: return reduceNative<T, OpMax>(o, in, n, count);
    case dtrain::RedOp::min: return reduceNative<T, OpMin>(o, in, n, count);
  }
}

template <float (*Load)(uint16_t), uint16_t (*Store)(float)>
void dispatchHalf(void* out, const void* const* ins, int n, size_t count, dtrain::RedOp op) {
  uint16_t* o = static_cast<uint16_t*>(out);
  const uint16_t* const* in = reinterpret_cast<const uint16_t* const*>(ins);
  switch (op) {
    case dtrain::RedOp::sum: case dtrain::RedOp::avg: return reduceHalf<OpSum, Load, Store>(o, in, n, count);
    case dtrain::RedOp::prod: return reduceHalf<OpProd, Load, Store>(o, in, n, count);
    case dtrain::RedOp::max: return reduceHalf<OpMax, Load, Store>(o, in, n, count);
    case dtrain::RedOp::min: return reduceHalf<OpMin, Load, Store>(o, in, n, count);
  }
}

}  // namespace

void reduceInto(void* out, const void* const* ins, int n, size_t count, dtrain::DType t, dtrain::RedOp op) {
  switch (t) {
    case dtrain::DType::f32: return dispatchOp<float>(out, ins, n, count, op);
    case dtrain::DType::f64: return dispatchOp<double>(out, ins, n, count, op);
    case dtrain::DType::i32: return dispatchOp<int32_t>(out, ins, n, count, op);
    case dtrain::DType::i64: return dispatchOp<int64_t>(out, ins, n, count, op);
    case dtrain::DType::bf16: return dispatchHalf<bf16ToF32, f32ToBf16>(out, ins, n, count, op);
    case dtrain::DType::f16: return dispatchHalf<f16ToF32, f32ToF16>(out, ins, n, count, op);
  }
}
