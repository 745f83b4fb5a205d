// Entry point of the native addon. Each part registers its own exports, so parts are added without
// touching each other's files.
#include <napi.h>

#include "parts.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  dtrain::InitCollectives(env, exports);  // addon/src/collectives
  dtrain::InitOptim(env, exports);        // addon/src/optim
  dtrain::InitLayers(env, exports);       // addon/src/layers (GEMM, bias + activation, softmax cross-entropy)
  dtrain::InitProcess(env, exports);      // addon/src/process (pdeathsig, subreaper)
  dtrain::InitCuda(env, exports);         // addon/src/cuda_loader (dlopen of the CUDA part)
  return exports;
}

NODE_API_MODULE(dtrain_native, Init)
