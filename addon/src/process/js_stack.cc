// installStackSignal(signal, path): on `signal`, the main thread's JavaScript stack is written to `path`
// (replaced whole: written beside it, then renamed), for the agent to read (src/launch/stacks.ts).
//
// A JS listener (process.on) runs on the event loop and so never runs while the main thread spins; the
// report must interrupt V8 instead. The signal handler only writes a byte to a pipe (async-signal-safe);
// a small thread then asks V8 for an interrupt (runs at the next function entry or loop back-edge, even
// in a busy loop) and wakes the event loop (runs when the thread is idle, where no JS is on the stack).
// The first of the two to run answers. The interrupt takes Node's diagnostic report and keeps only its
// "javascriptStack" object: the rest (environment, command line, resource data) is never written.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>
#include <v8.h>

#include <atomic>
#include <sstream>
#include <string>
#include <thread>

#include "parts.h"

// node.h states the runtime's own NAPI_VERSION; the addon builds against the one binding.gyp names.
#pragma push_macro("NAPI_VERSION")
#undef NAPI_VERSION
#include <node.h>
#pragma pop_macro("NAPI_VERSION")

namespace dtrain {
namespace {

int wakeFd[2] = {-1, -1};
std::string stackPath;
v8::Isolate* mainIsolate = nullptr;
uv_async_t idleWake;
std::atomic<uint64_t> requested{0};
uint64_t answered = 0;  // main thread only

void WriteFile(const std::string& text) {
  std::string tmp = stackPath + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(fd);
  rename(tmp.c_str(), stackPath.c_str());
}

// The value of "javascriptStack" in the report's JSON text: a brace-matching scan that skips strings.
std::string JavascriptStack(const std::string& report) {
  const std::string key = "\"javascriptStack\":";
  size_t at = report.find(key);
  if (at == std::string::npos) return "";
  size_t start = report.find('{', at + key.size());
  if (start == std::string::npos) return "";
  int depth = 0;
  bool inString = false;
  for (size_t i = start; i < report.size(); i++) {
    char c = report[i];
    if (inString) {
      if (c == '\\')
        i++;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '{') {
      depth++;
    } else if (c == '}' && --depth == 0) {
      return report.substr(start, i - start + 1);
    }
  }
  return "";
}

bool Pending() {
  uint64_t r = requested.load();
  if (answered == r) return false;
  answered = r;
  return true;
}

void OnInterrupt(v8::Isolate* isolate, void*) {
  if (!Pending()) return;
  v8::HandleScope scope(isolate);
  std::ostringstream report;
  node::GetNodeReport(isolate, "dtrain stacks", "Signal", v8::Local<v8::Value>(), report);
  std::string stack = JavascriptStack(report.str());
  WriteFile("{\"state\":\"running\",\"javascriptStack\":" + (stack.empty() ? "null" : stack) + "}\n");
}

void OnIdle(uv_async_t*) {
  if (!Pending()) return;
  WriteFile("{\"state\":\"idle\",\"javascriptStack\":null}\n");
}

void OnSignal(int) {
  int saved = errno;
  char b = 1;
  ssize_t ignored = write(wakeFd[1], &b, 1);
  (void)ignored;
  errno = saved;
}

void Relay() {
  char b;
  for (;;) {
    ssize_t n = read(wakeFd[0], &b, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    requested.fetch_add(1);
    mainIsolate->RequestInterrupt(OnInterrupt, nullptr);
    uv_async_send(&idleWake);
  }
}

Napi::Value InstallStackSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) {
    Napi::TypeError::New(env, "installStackSignal(signalNumber, path)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (mainIsolate) return Napi::Boolean::New(env, false);  // once per process
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop || pipe2(wakeFd, O_CLOEXEC) != 0)
    return Napi::Boolean::New(env, false);
  fcntl(wakeFd[1], F_SETFL, O_NONBLOCK);
  mainIsolate = v8::Isolate::GetCurrent();
  stackPath = info[1].As<Napi::String>().Utf8Value();
  uv_async_init(loop, &idleWake, OnIdle);
  uv_unref(reinterpret_cast<uv_handle_t*>(&idleWake));
  std::thread(Relay).detach();
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return Napi::Boolean::New(env, sigaction(info[0].As<Napi::Number>().Int32Value(), &sa, nullptr) == 0);
}

}  // namespace

void InitJsStack(Napi::Env env, Napi::Object process) {
  process.Set("installStackSignal", Napi::Function::New(env, InstallStackSignal));
}

}  // namespace dtrain
