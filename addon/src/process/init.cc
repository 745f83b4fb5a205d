// Process helpers for the agent: what Node cannot ask the kernel for by itself.
//  - setChildSubreaper(): orphaned descendants of this process are reparented here instead of to init,
//    so the agent can sweep them (by pid) after a worker's own shepherd was killed.
//  - setParentDeathSignal(sig): the kernel sends `sig` to this process when its parent exits; used by
//    a child agent so that a SIGKILLed controller still takes it down. Returns getppid() afterwards so the
//    caller can detect a parent that died before the call.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "parts.h"

namespace dtrain {
namespace {

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
}

Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "setParentDeathSignal(signalNumber)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int sig = info[0].As<Napi::Number>().Int32Value();
  if (prctl(PR_SET_PDEATHSIG, sig) != 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, getppid());
}

}  // namespace

void InitJsStack(Napi::Env env, Napi::Object process);  // js_stack.cc

void InitProcess(Napi::Env env, Napi::Object exports) {
  Napi::Object process = Napi::Object::New(env);
  process.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper));
  process.Set("setParentDeathSignal", Napi::Function::New(env, SetParentDeathSignal));
  process.Set("killAllSignal", Napi::Number::New(env, SIGRTMIN + 1));
  InitJsStack(env, process);
  exports.Set("process", process);
}

}  // namespace dtrain
