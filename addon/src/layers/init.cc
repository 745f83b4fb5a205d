// JavaScript bindings of the layer kernels (src/runtime/layers/native.ts types them). Calls are synchronous
// and single-threaded: one thread per rank, the caller's.
#include <napi.h>

#include <stdexcept>
#include <string>

#include "layers/elementwise.h"
#include "layers/gemm.h"
#include "napi_guard.h"
#include "parts.h"
#include "simd/level.h"

namespace dtrain {
namespace {

template <class T>
struct Span {
  T* data = nullptr;
  size_t length = 0;
};

// Positional arguments: the JavaScript wrappers (src/runtime/layers/kernels.ts) take the options object, so
// a call here reads no properties (named lookups cost more than a small product).
template <class T>
Span<T> array(const Napi::CallbackInfo& info, size_t at, const char* name, napi_typedarray_type want, bool required) {
  const Napi::Value v = info[at];
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw std::runtime_error(std::string(name) + " is required");
    return {};
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != want) {
    throw std::runtime_error(std::string(name) +
                             (want == napi_float32_array ? " must be a Float32Array" : " must be an Int32Array"));
  }
  return {static_cast<T*>(data), length};
}

Span<float> floats(const Napi::CallbackInfo& info, size_t at, const char* name, bool required = true) {
  return array<float>(info, at, name, napi_float32_array, required);
}

void expect_length(const char* name, size_t got, size_t want) {
  if (got != want) {
    throw std::runtime_error(std::string(name) + " has " + std::to_string(got) + " elements, expected " +
                             std::to_string(want));
  }
}

size_t dim(const Napi::CallbackInfo& info, size_t at, const char* name) {
  const Napi::Value v = info[at];
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0) || d > 9.0e15 || d != static_cast<double>(static_cast<size_t>(d))) {
    throw std::runtime_error(std::string(name) + " must be a non-negative integer");
  }
  return static_cast<size_t>(d);
}

int32_t integer(const Napi::CallbackInfo& info, size_t at, const char* name) {
  if (!info[at].IsNumber()) throw std::runtime_error(std::string(name) + " must be a number");
  return info[at].As<Napi::Number>().Int32Value();
}

// The request at `at`: a string, or undefined for "auto".
SimdLevel simd(const Napi::CallbackInfo& info, size_t at) {
  const Napi::Value v = info[at];
  if (v.IsUndefined()) return choose_simd_level("auto", SimdLevel::avx512);
  if (!v.IsString()) throw std::runtime_error("simd must be a string");
  return choose_simd_level(v.As<Napi::String>().Utf8Value(), SimdLevel::avx512);
}

// 0 none, 1 relu, 2 gelu (the wrappers map the names).
layers::Act act(const Napi::CallbackInfo& info, size_t at) {
  const int32_t a = integer(info, at, "act");
  if (a < 0 || a > 2) throw std::runtime_error("act must be 0 (none), 1 (relu) or 2 (gelu)");
  return static_cast<layers::Act>(a);
}

// gemm(a, b, c, m, n, k, flags, simd?): flags bit 0 transA, bit 1 transB, bit 2 accumulate.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    layers::GemmArgs g;
    g.m = dim(info, 3, "m");
    g.n = dim(info, 4, "n");
    g.k = dim(info, 5, "k");
    const int32_t flags = integer(info, 6, "flags");
    g.trans_a = flags & 1;
    g.trans_b = flags & 2;
    g.accumulate = flags & 4;
    const Span<float> a = floats(info, 0, "a"), b = floats(info, 1, "b"), c = floats(info, 2, "c");
    expect_length("a", a.length, g.m * g.k);
    expect_length("b", b.length, g.k * g.n);
    expect_length("c", c.length, g.m * g.n);
    g.a = a.data;
    g.b = b.data;
    g.c = c.data;
    layers::gemm(g, simd(info, 7));
    return info.Env().Undefined();
  });
}

// biasAct(z, bias?, y?, act, rows, cols, simd?): y null means z (in place).
Napi::Value BiasAct(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t rows = dim(info, 4, "rows"), cols = dim(info, 5, "cols");
    const Span<float> z = floats(info, 0, "z"), bias = floats(info, 1, "bias", false), y0 = floats(info, 2, "y", false);
    const Span<float> y = y0.data ? y0 : z;
    expect_length("z", z.length, rows * cols);
    expect_length("y", y.length, rows * cols);
    if (bias.data) expect_length("bias", bias.length, cols);
    layers::bias_act_forward(z.data, bias.data, y.data, rows, cols, act(info, 3), simd(info, 6));
    return info.Env().Undefined();
  });
}

// biasActBackward(dy, z, dz?, dbias?, act, rows, cols, accumulate, simd?): dz null means dy (in place).
Napi::Value BiasActBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t rows = dim(info, 5, "rows"), cols = dim(info, 6, "cols");
    const Span<float> dy = floats(info, 0, "dy"), z = floats(info, 1, "z"), dz0 = floats(info, 2, "dz", false);
    const Span<float> dbias = floats(info, 3, "dbias", false);
    const Span<float> dz = dz0.data ? dz0 : dy;
    expect_length("dy", dy.length, rows * cols);
    expect_length("z", z.length, rows * cols);
    expect_length("dz", dz.length, rows * cols);
    if (dbias.data) expect_length("dbias", dbias.length, cols);
    const bool accumulate = info[7].ToBoolean().Value();
    layers::bias_act_backward(dy.data, z.data, dz.data, dbias.data, rows, cols, act(info, 4), accumulate,
                              simd(info, 8));
    return info.Env().Undefined();
  });
}

// softmaxCrossEntropy(logits, labels, rows, classes, scale, grad?, simd?) -> mean loss
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const size_t rows = dim(info, 2, "rows"), classes = dim(info, 3, "classes");
    if (classes == 0) throw std::runtime_error("classes must be at least 1");
    const Span<float> logits = floats(info, 0, "logits"), grad = floats(info, 5, "grad", false);
    const Span<int32_t> labels = array<int32_t>(info, 1, "labels", napi_int32_array, true);
    expect_length("logits", logits.length, rows * classes);
    expect_length("labels", labels.length, rows);
    if (grad.data) expect_length("grad", grad.length, rows * classes);
    for (size_t r = 0; r < rows; ++r) {
      if (labels.data[r] < 0 || static_cast<size_t>(labels.data[r]) >= classes) {
        throw std::runtime_error("labels[" + std::to_string(r) + "] = " + std::to_string(labels.data[r]) +
                                 " is not a class in [0, " + std::to_string(classes) + ")");
      }
    }
    if (!info[4].IsNumber()) throw std::runtime_error("scale must be a number");
    const double scale = info[4].As<Napi::Number>().DoubleValue();
    return Napi::Number::New(
        info.Env(), layers::softmax_xent(logits.data, labels.data, rows, classes, scale, grad.data, simd(info, 6)));
  });
}

// layersSimd(request?) -> the path the layer kernels take for this request; throws for an unusable one.
Napi::Value LayersSimd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), simd_level_name(simd(info, 0))); });
}

}  // namespace

void InitLayers(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("biasAct", Napi::Function::New(env, BiasAct, "biasAct"));
  exports.Set("biasActBackward", Napi::Function::New(env, BiasActBackward, "biasActBackward"));
  exports.Set("softmaxCrossEntropy", Napi::Function::New(env, SoftmaxCrossEntropy, "softmaxCrossEntropy"));
  exports.Set("layersSimd", Napi::Function::New(env, LayersSimd, "layersSimd"));
}

}  // namespace dtrain
