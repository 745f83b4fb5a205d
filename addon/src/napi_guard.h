// One rule for the addon's argument errors: a C++ exception inside a binding becomes a JavaScript TypeError
// with its message (one line for the user, no abort).
#pragma once
#include <napi.h>

#include <exception>

namespace dtrain {

template <class Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    Napi::TypeError::New(info.Env(), e.what()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
}

}  // namespace dtrain
