// JavaScript bindings of the CUDA part's NCCL communicators (used by src/runtime/nccl only).
#pragma once
#include <napi.h>

namespace dtrain::cuda {
// Adds ncclLoad, ncclUniqueId, ncclCommInit, ncclCommSplit, ncclCommDestroy and ncclRun to `cuda`.
void InitNcclBindings(Napi::Env env, Napi::Object cuda);
}  // namespace dtrain::cuda
