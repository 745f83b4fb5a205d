// Loads the optional CUDA part (libdtrain_cuda.so) with dlopen, only when JavaScript asks for it, so the
// CPU addon never depends on CUDA being present. Exposes a probe (what doctor and the backend decision
// need) and the device-buffer and NCCL entry points the runtime's GPU path uses.
#include <dlfcn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_loader/cuda_part.h"
#include "cuda_loader/layer_bindings.h"
#include "cuda_loader/nccl_bindings.h"
#include "parts.h"

namespace dtrain {
namespace cuda {
CudaPart g_part;
}
namespace {
using cuda::CudaPart;
using cuda::g_part;

template <typename Fn>
bool Sym(void* lib, const char* name, Fn* slot) {
  *slot = reinterpret_cast<Fn>(dlsym(lib, name));
  return *slot != nullptr;
}

Napi::Value Fail(Napi::Env env, const std::string& what) {
  Napi::Error::New(env, what).ThrowAsJavaScriptException();
  return env.Undefined();
}

// cudaLoad(path): opens the part once; throws with dlerror's text when it cannot.
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_part.lib) return Napi::Boolean::New(env, true);
  std::string path = info[0].As<Napi::String>();
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return Fail(env, std::string("cannot load the CUDA part: ") + dlerror());
  CudaPart p;
  p.lib = lib;
  bool ok = true;
#define DTRAIN_SYM(name) ok = ok && Sym(lib, #name, &p.name);
  DTRAIN_CUDA_PART_FUNCTIONS(DTRAIN_SYM)
#undef DTRAIN_SYM
  if (!ok || p.dtrain_cuda_abi_version() != DTRAIN_CUDA_ABI_VERSION) {
    dlclose(lib);
    return Fail(env, "the CUDA part at " + path + " does not match this addon (rebuild with npm run build:addon)");
  }
  g_part = p;
  return Napi::Boolean::New(env, true);
}

bool Loaded(Napi::Env env) {
  if (g_part.lib) return true;
  Napi::Error::New(env, "the CUDA part is not loaded").ThrowAsJavaScriptException();
  return false;
}

// cudaProbe(): what doctor reports and what the agent's backend probe decides from.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  auto out = Napi::Object::New(env);
  int runtime = 0, driver = 0, count = 0;
  g_part.dtrain_cuda_runtime_version(&runtime);
  g_part.dtrain_cuda_driver_version(&driver);
  g_part.dtrain_cuda_device_count(&count);
  out.Set("archs", g_part.dtrain_cuda_built_archs());
  out.Set("runtimeVersion", runtime);
  out.Set("driverVersion", driver);
  out.Set("deviceCount", count);
  out.Set("deviceError", g_part.dtrain_cuda_last_error());
  auto devices = Napi::Array::New(env);
  for (int d = 0; d < count; ++d) {
    char name[256];
    if (g_part.dtrain_cuda_device_name(d, name, sizeof name) == 0) devices.Set(d, name);
  }
  out.Set("devices", devices);
  auto nccl = Napi::Object::New(env);
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (g_part.dtrain_nccl_load(path.empty() ? nullptr : path.c_str()) == 0) {
    int v = 0;
    g_part.dtrain_nccl_version(&v);
    nccl.Set("found", true);
    nccl.Set("version", v);
    nccl.Set("path", g_part.dtrain_nccl_loaded_path());
  } else {
    nccl.Set("found", false);
    nccl.Set("reason", g_part.dtrain_cuda_last_error());
  }
  out.Set("nccl", nccl);
  return out;
}

// Device memory as plain numbers (addresses fit in 53 bits on every CUDA platform) so the TypeScript
// DeviceBuffer owns lifetime and bookkeeping.
Napi::Value Malloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  void* p = nullptr;
  if (g_part.dtrain_cuda_malloc(&p, (size_t)info[0].As<Napi::Number>().Int64Value()) != 0)
    return Fail(env, g_part.dtrain_cuda_last_error());
  return Napi::Number::New(env, (double)(uintptr_t)p);
}

void* Ptr(const Napi::Value& v) { return (void*)(uintptr_t)v.As<Napi::Number>().Int64Value(); }

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_free(Ptr(info[0])) != 0) return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

// copy(direction 'h2d'|'d2h', devicePtr, typedArray)
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  std::string dir = info[0].As<Napi::String>();
  auto arr = info[2].As<Napi::TypedArray>();
  uint8_t* host = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  int rc = dir == "h2d" ? g_part.dtrain_cuda_h2d(Ptr(info[1]), host, arr.ByteLength())
                        : g_part.dtrain_cuda_d2h(host, Ptr(info[1]), arr.ByteLength());
  if (rc != 0) return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

// fill(devicePtr, dtypeCode, count, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_fill(Ptr(info[0]), info[1].As<Napi::Number>().Int32Value(),
                              (size_t)info[2].As<Napi::Number>().Int64Value(),
                              info[3].As<Napi::Number>().DoubleValue()) != 0)
    return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

// adamwStep(params, paramsDtype, master (0: none), grads, m, v, n, {lr, beta1, beta2, eps, weightDecay, step,
// gradScale}): the fused kernel, waited for (like the CPU kernel, which also completes inside its call).
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  auto hp = info[7].As<Napi::Object>();
  auto num = [&](const char* key, double fallback) {
    Napi::Value v = hp.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
  };
  dtrain_adamw_hparams h{float(num("lr", 0)),       float(num("beta1", 0.9)),     float(num("beta2", 0.999)),
                         float(num("eps", 1e-8)),   float(num("weightDecay", 0)), int64_t(num("step", 1)),
                         float(num("gradScale", 1))};
  if (g_part.dtrain_cuda_adamw_step(Ptr(info[0]), info[1].As<Napi::Number>().Int32Value(), (float*)Ptr(info[2]),
                                    (const float*)Ptr(info[3]), (float*)Ptr(info[4]), (float*)Ptr(info[5]),
                                    (size_t)info[6].As<Napi::Number>().Int64Value(), &h) != 0)
    return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_synchronize() != 0) return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

// ipcExport(ptr) -> a Uint8Array of DTRAIN_CUDA_IPC_HANDLE_BYTES
Napi::Value IpcExport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  auto out = Napi::Uint8Array::New(env, DTRAIN_CUDA_IPC_HANDLE_BYTES);
  if (g_part.dtrain_cuda_ipc_export(Ptr(info[0]), out.Data()) != 0) return Fail(env, g_part.dtrain_cuda_last_error());
  return out;
}

// ipcImport(handle: Uint8Array of DTRAIN_CUDA_IPC_HANDLE_BYTES) -> the mapped address
Napi::Value IpcImport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (!info[0].IsTypedArray() || info[0].As<Napi::Uint8Array>().ByteLength() != DTRAIN_CUDA_IPC_HANDLE_BYTES)
    return Fail(env, "an IPC handle is a Uint8Array of " + std::to_string(DTRAIN_CUDA_IPC_HANDLE_BYTES) + " bytes");
  void* p = nullptr;
  if (g_part.dtrain_cuda_ipc_import(info[0].As<Napi::Uint8Array>().Data(), &p) != 0)
    return Fail(env, g_part.dtrain_cuda_last_error());
  return Napi::Number::New(env, (double)(uintptr_t)p);
}

Napi::Value IpcClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_ipc_close(Ptr(info[0])) != 0) return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}

Napi::Value SetDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Loaded(env)) return env.Undefined();
  if (g_part.dtrain_cuda_set_device(info[0].As<Napi::Number>().Int32Value()) != 0)
    return Fail(env, g_part.dtrain_cuda_last_error());
  return env.Undefined();
}
}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  auto cuda = Napi::Object::New(env);
  cuda.Set("load", Napi::Function::New(env, Load));
  cuda.Set("probe", Napi::Function::New(env, Probe));
  cuda.Set("malloc", Napi::Function::New(env, Malloc));
  cuda.Set("free", Napi::Function::New(env, Free));
  cuda.Set("copy", Napi::Function::New(env, Copy));
  cuda.Set("fill", Napi::Function::New(env, Fill));
  cuda.Set("setDevice", Napi::Function::New(env, SetDevice));
  cuda.Set("synchronize", Napi::Function::New(env, Synchronize));
  cuda.Set("ipcExport", Napi::Function::New(env, IpcExport));
  cuda.Set("ipcImport", Napi::Function::New(env, IpcImport));
  cuda.Set("ipcClose", Napi::Function::New(env, IpcClose));
  cuda.Set("adamwStep", Napi::Function::New(env, AdamwStep));
  cuda::InitNcclBindings(env, cuda);
  cuda::InitLayerBindings(env, cuda);
  exports.Set("cuda", cuda);
}
}  // namespace dtrain
