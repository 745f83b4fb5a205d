// JavaScript bindings of the layer kernels (src/runtime/layers/native.ts types them). Calls are synchronous
// and single-threaded: one thread per rank, the caller's.
#include <napi.h>

#include <stdexcept>
#include <string>

#include "layers/elementwise.h"
#include "layers/gemm.h"
#include "parts.h"
#include "simd/level.h"

namespace dtrain {
namespace {

template <class T>
struct Span {
  T* data = nullptr;
  size_t length = 0;
};

template <class T>
Span<T> array(const Napi::Object& o, const char* key, napi_typedarray_type want, bool required) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw std::runtime_error(std::string(key) + " is required");
    return {};
  }
  const char* kind = want == napi_float32_array ? "a Float32Array" : "an Int32Array";
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want) {
    throw std::runtime_error(std::string(key) + " must be " + kind);
  }
  const Napi::TypedArray ta = v.As<Napi::TypedArray>();
  return {reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset()), ta.ElementLength()};
}

Span<float> floats(const Napi::Object& o, const char* key, bool required = true) {
  return array<float>(o, key, napi_float32_array, required);
}

void expect_length(const char* key, size_t got, size_t want) {
  if (got != want) {
    throw std::runtime_error(std::string(key) + " has " + std::to_string(got) + " elements, expected " +
                             std::to_string(want));
  }
}

size_t dim(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw std::runtime_error(std::string(key) + " must be a non-negative integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != static_cast<double>(static_cast<size_t>(d)) || d > 9.0e15) {
    throw std::runtime_error(std::string(key) + " must be a non-negative integer");
  }
  return static_cast<size_t>(d);
}

bool flag(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) throw std::runtime_error(std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string text(const Napi::Object& o, const char* key, const char* fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw std::runtime_error(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

SimdLevel simd(const Napi::Object& o) { return choose_simd_level(text(o, "simd", "auto"), SimdLevel::avx512); }

layers::Act act(const Napi::Object& o) {
  const std::string a = text(o, "act", "none");
  if (a == "none") return layers::Act::none;
  if (a == "relu") return layers::Act::relu;
  if (a == "gelu") return layers::Act::gelu;
  throw std::runtime_error("act must be none, relu or gelu, got '" + a + "'");
}

template <class Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn fn) {
  try {
    if (info.Length() < 1 || !info[0].IsObject()) throw std::runtime_error("expected an options object");
    return fn(info[0].As<Napi::Object>());
  } catch (const std::exception& e) {
    Napi::TypeError::New(info.Env(), e.what()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
}

// gemm({ a, b, c, m, n, k, transA?, transB?, accumulate?, simd? })
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&](const Napi::Object& o) -> Napi::Value {
    layers::GemmArgs g;
    g.m = dim(o, "m");
    g.n = dim(o, "n");
    g.k = dim(o, "k");
    g.trans_a = flag(o, "transA");
    g.trans_b = flag(o, "transB");
    g.accumulate = flag(o, "accumulate");
    const Span<float> a = floats(o, "a"), b = floats(o, "b"), c = floats(o, "c");
    expect_length("a", a.length, g.m * g.k);
    expect_length("b", b.length, g.k * g.n);
    expect_length("c", c.length, g.m * g.n);
    g.a = a.data;
    g.b = b.data;
    g.c = c.data;
    layers::gemm(g, simd(o));
    return info.Env().Undefined();
  });
}

// biasAct({ z, bias?, y?, act?, rows, cols, simd? }): y defaults to z (in place).
Napi::Value BiasAct(const Napi::CallbackInfo& info) {
  return guarded(info, [&](const Napi::Object& o) -> Napi::Value {
    const size_t rows = dim(o, "rows"), cols = dim(o, "cols");
    const Span<float> z = floats(o, "z"), bias = floats(o, "bias", false), y0 = floats(o, "y", false);
    const Span<float> y = y0.data ? y0 : z;
    expect_length("z", z.length, rows * cols);
    expect_length("y", y.length, rows * cols);
    if (bias.data) expect_length("bias", bias.length, cols);
    layers::bias_act_forward(z.data, bias.data, y.data, rows, cols, act(o), simd(o));
    return info.Env().Undefined();
  });
}

// biasActBackward({ dy, z, dz?, dbias?, act?, rows, cols, accumulate?, simd? }): dz defaults to dy.
Napi::Value BiasActBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&](const Napi::Object& o) -> Napi::Value {
    const size_t rows = dim(o, "rows"), cols = dim(o, "cols");
    const Span<float> dy = floats(o, "dy"), z = floats(o, "z"), dz0 = floats(o, "dz", false);
    const Span<float> dbias = floats(o, "dbias", false);
    const Span<float> dz = dz0.data ? dz0 : dy;
    expect_length("dy", dy.length, rows * cols);
    expect_length("z", z.length, rows * cols);
    expect_length("dz", dz.length, rows * cols);
    if (dbias.data) expect_length("dbias", dbias.length, cols);
    layers::bias_act_backward(dy.data, z.data, dz.data, dbias.data, rows, cols, act(o), flag(o, "accumulate"), simd(o));
    return info.Env().Undefined();
  });
}

// softmaxCrossEntropy({ logits, labels, rows, classes, scale?, grad?, simd? }) -> mean loss
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  return guarded(info, [&](const Napi::Object& o) -> Napi::Value {
    const size_t rows = dim(o, "rows"), classes = dim(o, "classes");
    if (classes == 0) throw std::runtime_error("classes must be at least 1");
    const Span<float> logits = floats(o, "logits"), grad = floats(o, "grad", false);
    const Span<int32_t> labels = array<int32_t>(o, "labels", napi_int32_array, true);
    expect_length("logits", logits.length, rows * classes);
    expect_length("labels", labels.length, rows);
    if (grad.data) expect_length("grad", grad.length, rows * classes);
    for (size_t r = 0; r < rows; ++r) {
      if (labels.data[r] < 0 || static_cast<size_t>(labels.data[r]) >= classes) {
        throw std::runtime_error("labels[" + std::to_string(r) + "] = " + std::to_string(labels.data[r]) +
                                 " is not a class in [0, " + std::to_string(classes) + ")");
      }
    }
    const Napi::Value s = o.Get("scale");
    if (!s.IsUndefined() && !s.IsNumber()) throw std::runtime_error("scale must be a number");
    const double scale =
        s.IsUndefined() ? 1.0 / static_cast<double>(rows ? rows : 1) : s.As<Napi::Number>().DoubleValue();
    return Napi::Number::New(info.Env(),
                             layers::softmax_xent(logits.data, labels.data, rows, classes, scale, grad.data, simd(o)));
  });
}

// layersSimd(request?) -> the path the layer kernels take for this request; throws for an unusable one.
Napi::Value LayersSimd(const Napi::CallbackInfo& info) {
  try {
    const std::string req = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "auto";
    return Napi::String::New(info.Env(), simd_level_name(choose_simd_level(req, SimdLevel::avx512)));
  } catch (const std::exception& e) {
    Napi::TypeError::New(info.Env(), e.what()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
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
