// JavaScript bindings of the optimizer kernels (src/runtime/optim/native.ts types them). Calls are
// synchronous: a step over a shard is one memory-bound pass, and the transports progress on their own thread.
#include <napi.h>

#include <stdexcept>
#include <string>

#include "napi_guard.h"
#include "optim/adamw_kernel.h"
#include "optim/stream_loop.h"
#include "parts.h"

namespace dtrain {
namespace {

using adamw::ElemType;

struct View {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_float32_array;
};

bool to_view(const Napi::Value& v, View* out) {
  if (!v.IsTypedArray()) return false;
  const Napi::TypedArray ta = v.As<Napi::TypedArray>();
  out->data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  out->length = ta.ElementLength();
  out->type = ta.TypedArrayType();
  return true;
}

ElemType parse_type(const std::string& s) {
  if (s == "float32") return ElemType::f32;
  if (s == "bfloat16") return ElemType::bf16;
  if (s == "float16") return ElemType::f16;
  throw std::runtime_error("dtype must be float32, bfloat16 or float16, got '" + s + "'");
}

// A typed array of the storage `type` needs: Float32Array for fp32, Uint16Array for the 16-bit types.
View typed(const Napi::Object& o, const char* key, ElemType type) {
  View v;
  if (!to_view(o.Get(key), &v)) throw std::runtime_error(std::string(key) + " must be a typed array");
  const napi_typedarray_type want = type == ElemType::f32 ? napi_float32_array : napi_uint16_array;
  if (v.type != want) {
    throw std::runtime_error(std::string(key) +
                             (type == ElemType::f32 ? " must be a Float32Array" : " must be a Uint16Array"));
  }
  return v;
}

double number(const Napi::Object& o, const char* key, double fallback, bool required) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw std::runtime_error(std::string(key) + " is required");
    return fallback;
  }
  if (!v.IsNumber()) throw std::runtime_error(std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string text(const Napi::Object& o, const char* key, const char* fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw std::runtime_error(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object options(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) throw std::runtime_error("expected an options object");
  return info[0].As<Napi::Object>();
}

// adamwStep({ param, paramType, master?, grad, gradType, m, v, lr, beta1, beta2, eps, weightDecay, step,
//             gradScale?, simd?, threads? })
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Napi::Object o = options(info);
    adamw::Arrays a;
    a.param_type = parse_type(text(o, "paramType", "float32"));
    a.grad_type = parse_type(text(o, "gradType", "float32"));
    const View p = typed(o, "param", a.param_type), g = typed(o, "grad", a.grad_type);
    const View m = typed(o, "m", ElemType::f32), v = typed(o, "v", ElemType::f32);
    a.n = p.length;
    if (a.param_type != ElemType::f32) {
      const View master = typed(o, "master", ElemType::f32);
      if (master.length != a.n) throw std::runtime_error("master length differs from param length");
      a.master = static_cast<float*>(master.data);
    }
    if (g.length != a.n || m.length != a.n || v.length != a.n) {
      throw std::runtime_error("param, grad, m and v must have the same length");
    }
    a.param = p.data;
    a.grad = g.data;
    a.m = static_cast<float*>(m.data);
    a.v = static_cast<float*>(v.data);
    const adamw::Hyper h{number(o, "lr", 0, true), number(o, "beta1", 0, true), number(o, "beta2", 0, true),
                         number(o, "eps", 0, true), number(o, "weightDecay", 0, true)};
    const double step = number(o, "step", 0, true);
    if (step < 1) throw std::runtime_error("step must be >= 1");
    const auto k =
        adamw::make_step_consts(h, static_cast<int64_t>(step), static_cast<float>(number(o, "gradScale", 1, false)));
    const adamw::Simd simd = adamw::choose_simd(text(o, "simd", "auto"));
    adamw::step(a, k, simd, adamw::choose_threads(static_cast<int>(number(o, "threads", 0, false))));
    return info.Env().Undefined();
  });
}

// sumSquares({ data, dtype, simd?, threads? }) -> number
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Napi::Object o = options(info);
    const ElemType t = parse_type(text(o, "dtype", "float32"));
    const View d = typed(o, "data", t);
    const adamw::Simd simd = adamw::choose_simd(text(o, "simd", "auto"));
    const int threads = adamw::choose_threads(static_cast<int>(number(o, "threads", 0, false)));
    return Napi::Number::New(info.Env(), adamw::sum_squares(d.data, t, d.length, simd, threads));
  });
}

// convertElements({ src, srcType, dst, dstType }): lengths must match.
Napi::Value ConvertElements(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Napi::Object o = options(info);
    const ElemType st = parse_type(text(o, "srcType", "float32")), dt = parse_type(text(o, "dstType", "float32"));
    const View s = typed(o, "src", st), d = typed(o, "dst", dt);
    if (s.length != d.length) throw std::runtime_error("src and dst must have the same length");
    adamw::convert(s.data, st, d.data, dt, s.length);
    return info.Env().Undefined();
  });
}

// adamwSimd(request?) -> the path a step would take ("scalar" | "avx2"); throws for an unusable request.
Napi::Value AdamwSimd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const std::string req = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "auto";
    return Napi::String::New(info.Env(), adamw::simd_name(adamw::choose_simd(req)));
  });
}

// adamwThreads(request?) -> the thread count a step uses (0 or absent: OMP_NUM_THREADS, else 1).
Napi::Value AdamwThreads(const Napi::CallbackInfo& info) {
  const int req = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  return Napi::Number::New(info.Env(), adamw::choose_threads(req));
}

// streamLoop({ p, g, m, v }): the benchmark's bandwidth reference, 4 reads and 3 writes per element.
Napi::Value StreamLoop(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Napi::Object o = options(info);
    const View p = typed(o, "p", ElemType::f32), g = typed(o, "g", ElemType::f32);
    const View m = typed(o, "m", ElemType::f32), v = typed(o, "v", ElemType::f32);
    if (g.length != p.length || m.length != p.length || v.length != p.length) {
      throw std::runtime_error("p, g, m and v must have the same length");
    }
    stream_loop(static_cast<float*>(p.data), static_cast<const float*>(g.data), static_cast<float*>(m.data),
                static_cast<float*>(v.data), p.length);
    return info.Env().Undefined();
  });
}

}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep, "adamwStep"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("convertElements", Napi::Function::New(env, ConvertElements, "convertElements"));
  exports.Set("adamwSimd", Napi::Function::New(env, AdamwSimd, "adamwSimd"));
  exports.Set("adamwThreads", Napi::Function::New(env, AdamwThreads, "adamwThreads"));
  exports.Set("streamLoop", Napi::Function::New(env, StreamLoop, "streamLoop"));
}

}  // namespace dtrain
