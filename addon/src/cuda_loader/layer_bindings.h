// JavaScript bindings of the CUDA part's layer kernels and cuBLAS GEMM (used by src/runtime/layers/device.ts).
#pragma once
#include <napi.h>

namespace dtrain::cuda {
// Adds cublasLoad, gemm, biasAct, biasActBackward and softmaxCrossEntropy to `cuda`.
void InitLayerBindings(Napi::Env env, Napi::Object cuda);
}  // namespace dtrain::cuda
