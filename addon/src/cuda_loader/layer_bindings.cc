// The device layer kernels as positional calls on device addresses (numbers; 0 for an absent operand).
// Shapes, dtypes and host/device mixing are checked by the TypeScript caller, which knows each DeviceBuffer's
// length and dtype; the C ABI checks what it can (act codes, flags, dtypes, labels) and its message is thrown.
#include "cuda_loader/layer_bindings.h"

#include <cstdint>
#include <string>

#include "cuda_loader/cuda_part.h"

namespace dtrain::cuda {
namespace {
bool Loaded(Napi::Env env) {
  if (g_part.lib) return true;
  Napi::Error::New(env, "the CUDA part is not loaded").ThrowAsJavaScriptException();
  return false;
}

Napi::Value Fail(Napi::Env env) {
  Napi::Error::New(env, g_part.dtrain_cuda_last_error()).ThrowAsJavaScriptException();
  return env.Undefined();
}

template <class T = void>
T* Ptr(const Napi::Value& v) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(v.As<Napi::Number>().Int64Value()));
}
size_t Size(const Napi::Value& v) { return static_cast<size_t>(v.As<Napi::Number>().Int64Value()); }
int Int(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }

// cublasLoad(path?) -> the path cuBLAS was loaded from; throws with the search's reason when it cannot.
Napi::Value CublasLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  const std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (g_part.dtrain_cublas_load(path.empty() ? nullptr : path.c_str()) != 0) return Fail(env);
  return Napi::String::New(env, g_part.dtrain_cublas_loaded_path());
}

// gemm(a, b, c, m, n, k, flags, inDtype)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_gemm(Ptr(info[0]), Ptr(info[1]), Ptr<float>(info[2]), Size(info[3]), Size(info[4]),
                              Size(info[5]), Int(info[6]), Int(info[7])) != 0)
    return Fail(env);
  return env.Undefined();
}

// biasAct(z, bias, y, act, rows, cols)
Napi::Value BiasAct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_bias_act(Ptr<float>(info[0]), Ptr<float>(info[1]), Ptr<float>(info[2]), Size(info[4]),
                                  Size(info[5]), Int(info[3])) != 0)
    return Fail(env);
  return env.Undefined();
}

// biasActBackward(dy, z, dz, dbias, act, rows, cols, accumulate)
Napi::Value BiasActBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_bias_act_backward(Ptr<float>(info[0]), Ptr<float>(info[1]), Ptr<float>(info[2]),
                                           Ptr<float>(info[3]), Size(info[5]), Size(info[6]), Int(info[4]),
                                           info[7].ToBoolean().Value() ? 1 : 0) != 0)
    return Fail(env);
  return env.Undefined();
}

// softmaxCrossEntropy(logits, labels, rows, classes, scale, grad) -> the mean loss
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  double loss = 0;
  if (g_part.dtrain_cuda_softmax_xent(Ptr<float>(info[0]), Ptr<int32_t>(info[1]), Size(info[2]), Size(info[3]),
                                      info[4].As<Napi::Number>().DoubleValue(), Ptr<float>(info[5]), &loss) != 0)
    return Fail(env);
  return Napi::Number::New(env, loss);
}
}  // namespace

void InitLayerBindings(Napi::Env env, Napi::Object cuda) {
  cuda.Set("cublasLoad", Napi::Function::New(env, CublasLoad));
  cuda.Set("gemm", Napi::Function::New(env, Gemm));
  cuda.Set("biasAct", Napi::Function::New(env, BiasAct));
  cuda.Set("biasActBackward", Napi::Function::New(env, BiasActBackward));
  cuda.Set("softmaxCrossEntropy", Napi::Function::New(env, SoftmaxCrossEntropy));
}
}  // namespace dtrain::cuda
