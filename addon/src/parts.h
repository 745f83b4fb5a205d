// Registration functions of the addon's parts; each is defined in its own folder.
#pragma once
#include <napi.h>

namespace dtrain {
void InitCollectives(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitLayers(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitCuda(Napi::Env env, Napi::Object exports);
}  // namespace dtrain
