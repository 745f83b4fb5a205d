// JavaScript bindings of the collectives (used by src/runtime/group.ts only; the public API is there).
// Small collectives run inline on the calling thread when nothing is queued; everything else goes to the
// engine's progress thread and settles a promise from there.
#include <napi.h>

#include <cstring>
#include <initializer_list>
#include <memory>

#include "collectives/engine.h"
#include "collectives/errors.h"
#include "collectives/group.h"
#include "collectives/reduce.h"
#include "collectives/shm_region.h"
#include "collectives/wait.h"
#include "parts.h"

namespace dtrain {
namespace {

constexpr size_t kInlineBytes = 64 * 1024;

struct Runtime {
  Context ctx;
  std::unique_ptr<Engine> engine;
  std::vector<std::unique_ptr<Group>> groups;  // handles are indices
};
std::unique_ptr<Runtime> runtime;

Runtime& rt(Napi::Env env) {
  if (!runtime) throw CollectiveError("dtrain: init() has not run (or close() already did)");
  return *runtime;
}

Group& groupArg(const Napi::CallbackInfo& info, size_t i) {
  Runtime& r = rt(info.Env());
  uint32_t h = info[i].As<Napi::Number>().Uint32Value();
  if (h >= r.groups.size() || !r.groups[h]) throw CollectiveError("dtrain: invalid or closed group");
  return *r.groups[h];
}

struct Buf {
  uint8_t* data;
  size_t bytes;
  Napi::Object object;
};

size_t elementBytes(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

// One N-API call: the data pointer it returns already includes the view's byte offset.
Buf bufArg(const Napi::CallbackInfo& info, size_t i) {
  napi_value v = info[i];
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(info.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok)
    throw CollectiveError("dtrain: expected a typed array");
  return {static_cast<uint8_t*>(data), length * elementBytes(type), Napi::Object(info.Env(), v)};
}

DType dtypeArg(const Napi::CallbackInfo& info, size_t i) { return DType(info[i].As<Napi::Number>().Uint32Value()); }
RedOp redopArg(const Napi::CallbackInfo& info, size_t i) { return RedOp(info[i].As<Napi::Number>().Uint32Value()); }
int64_t timeoutArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int64Value() : 0;
}

// Runs `body` inline when small and nothing is pending (returns undefined), else queues it (returns a
// promise). The inline path allocates nothing: it is most of a small op's cost outside the transport.
// The op takes its seq in the group's flight recorder here, on the JS thread, in the order it was called.
template <typename Body>
Napi::Value dispatch(const Napi::CallbackInfo& info, Group& g, OpKind kind, DType t, size_t count, size_t bytes,
                     int root, std::initializer_list<Napi::Object> keep, Body&& body) {
  Napi::Env env = info.Env();
  Runtime& r = rt(env);
  if (bytes <= kInlineBytes && r.engine->idle()) {
    body(g.flightBegin(kind, t, count, bytes, root, false));
    return env.Undefined();
  }
  Job* job = new Job(env);
  for (auto& o : keep) job->keepAlive.push_back(Napi::Persistent(o));
  Napi::Promise p = job->deferred.Promise();
  FlightTicket ft = g.flightBegin(kind, t, count, bytes, root, true);
  job->run = [body = std::forward<Body>(body), ft] { body(ft); };
  r.engine->submit(env, job);
  return p;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (runtime) throw CollectiveError("dtrain: init() already ran in this process");
  auto o = info[0].As<Napi::Object>();
  auto r = std::make_unique<Runtime>();
  r->ctx.rank = o.Get("rank").As<Napi::Number>().Int32Value();
  r->ctx.worldSize = o.Get("worldSize").As<Napi::Number>().Int32Value();
  r->ctx.nodeRank = o.Get("nodeRank").As<Napi::Number>().Int32Value();
  r->ctx.rendezvousTimeoutMs = o.Get("rendezvousTimeoutMs").As<Napi::Number>().Int64Value();
  r->ctx.collectiveTimeoutMs = o.Get("collectiveTimeoutMs").As<Napi::Number>().Int64Value();
  std::string store = o.Get("store").As<Napi::String>().Utf8Value();
  r->ctx.socketIfname = o.Get("socketIfname").As<Napi::String>().Utf8Value();
  r->ctx.masterAddr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
  Napi::Value flight = o.Get("flightRecorder");
  r->ctx.flight =
      std::make_unique<FlightRecorder>(flight.IsString() ? flight.As<Napi::String>().Utf8Value() : "", r->ctx.rank);
  if (r->ctx.worldSize > 1) r->ctx.store = std::make_unique<store::StoreClient>(store, int(r->ctx.rendezvousTimeoutMs));
  r->engine = std::make_unique<Engine>(env);
  runtime = std::move(r);
  // A process that exits without dist.close(): stop the progress thread while the environment still
  // exists (static destructors run after it is gone, too late to release the thread-safe function).
  env.AddCleanupHook([] {
    if (!runtime) return;
    runtime->engine->stop();
    runtime->groups.clear();
    runtime.reset();
  });
  return env.Undefined();
}

Napi::Value NewGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Runtime& r = rt(env);
  std::string name = info[0].As<Napi::String>().Utf8Value();
  auto arr = info[1].As<Napi::Array>();
  std::vector<int> ranks;
  for (uint32_t i = 0; i < arr.Length(); ++i) ranks.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  r.groups.push_back(std::make_unique<Group>(r.ctx, name, ranks));
  auto out = Napi::Object::New(env);
  out.Set("handle", Napi::Number::New(env, double(r.groups.size() - 1)));
  out.Set("rank", Napi::Number::New(env, r.groups.back()->rank()));
  out.Set("kind", Napi::String::New(env, r.groups.back()->kind()));
  return out;
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Group& g = groupArg(info, 0);
  Buf b = bufArg(info, 1);
  DType t = dtypeArg(info, 2);
  RedOp op = redopArg(info, 3);
  int64_t to = timeoutArg(info, 4);
  size_t count = b.bytes / dtypeSize(t);
  return dispatch(info, g, OpKind::allReduce, t, count, b.bytes, 0, {b.object},
                  [&g, b, t, op, to, count](FlightTicket ft) { g.allReduce(b.data, count, t, op, to, ft); });
}

Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  Group& g = groupArg(info, 0);
  Buf in = bufArg(info, 1), out = bufArg(info, 2);
  DType t = dtypeArg(info, 3);
  RedOp op = redopArg(info, 4);
  int64_t to = timeoutArg(info, 5);
  size_t n = out.bytes / dtypeSize(t);
  if (in.bytes != out.bytes * size_t(g.size()))
    throw CollectiveError("reduceScatter: input must hold group size (" + std::to_string(g.size()) +
                          ") times the output's elements");
  return dispatch(
      info, g, OpKind::reduceScatter, t, n, in.bytes, 0, {in.object, out.object},
      [&g, in, out, t, op, to, n](FlightTicket ft) { g.reduceScatter(in.data, out.data, n, t, op, to, ft); });
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Group& g = groupArg(info, 0);
  Buf in = bufArg(info, 1), out = bufArg(info, 2);
  DType t = dtypeArg(info, 3);
  int64_t to = timeoutArg(info, 4);
  size_t n = in.bytes / dtypeSize(t);
  if (out.bytes != in.bytes * size_t(g.size()))
    throw CollectiveError("allGather: output must hold group size (" + std::to_string(g.size()) +
                          ") times the input's elements");
  return dispatch(info, g, OpKind::allGather, t, n, out.bytes, 0, {in.object, out.object},
                  [&g, in, out, t, to, n](FlightTicket ft) { g.allGather(in.data, out.data, n, t, to, ft); });
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Group& g = groupArg(info, 0);
  Buf b = bufArg(info, 1);
  DType t = dtypeArg(info, 2);
  int root = info[3].As<Napi::Number>().Int32Value();
  int64_t to = timeoutArg(info, 4);
  if (root < 0 || root >= g.size())
    throw CollectiveError("broadcast: root " + std::to_string(root) + " is not a rank of group " + g.name());
  size_t count = b.bytes / dtypeSize(t);
  return dispatch(info, g, OpKind::broadcast, t, count, b.bytes, root, {b.object},
                  [&g, b, t, root, to, count](FlightTicket ft) { g.broadcast(b.data, count, t, root, to, ft); });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Group& g = groupArg(info, 0);
  int64_t to = timeoutArg(info, 1);
  return dispatch(info, g, OpKind::barrier, DType::f32, 0, 0, 0, {}, [&g, to](FlightTicket ft) { g.barrier(to, ft); });
}

Napi::Value PointToPoint(const Napi::CallbackInfo& info, bool isSend) {
  Napi::Env env = info.Env();
  Runtime& r = rt(env);
  Group& g = groupArg(info, 0);
  Buf b = bufArg(info, 1);
  DType t = dtypeArg(info, 2);
  int peer = info[3].As<Napi::Number>().Int32Value();
  int tag = info[4].As<Napi::Number>().Int32Value();
  int64_t to = timeoutArg(info, 5);
  Channel* ch = g.p2pChannel(peer, isSend ? "send" : "recv");
  Job* job = new Job(env);
  job->group = &g;
  job->channel = ch;
  job->isSend = isSend;
  job->peer = peer;
  job->tag = tag;
  job->dtype = t;
  job->count = b.bytes / dtypeSize(t);
  job->payload = b.data;
  job->deadline = g.deadline(to);
  if (isSend) job->header = OpHeader{kHeaderMagic, kP2p, uint8_t(t), 0, 0, tag, job->count, 0};
  job->keepAlive.push_back(Napi::Persistent(b.object));
  Napi::Promise p = job->deferred.Promise();
  r.engine->submit(env, job);
  return p;
}

Napi::Value Send(const Napi::CallbackInfo& info) { return PointToPoint(info, true); }
Napi::Value Recv(const Napi::CallbackInfo& info) { return PointToPoint(info, false); }

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupArg(info, 0);
  auto list = g.stats();
  auto arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("op", list[i].op);
    o.Set("transport", list[i].transport);
    o.Set("algorithm", list[i].algorithm);
    o.Set("count", Napi::Number::New(env, double(list[i].count)));
    o.Set("bytes", Napi::Number::New(env, double(list[i].bytes)));
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

// dist.alloc: an ArrayBuffer over a memfd region; peers on the host read it in place during ops.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t bytes = size_t(info[0].As<Napi::Number>().Int64Value());
  ShmRegion region = createRegion(bytes, "dist.alloc");
  registerAllocation(region);
  auto* owned = new ShmRegion(region);
  return Napi::ArrayBuffer::New(
      env, region.base, bytes,
      [](Napi::Env, void*, ShmRegion* r) {
        unregisterAllocation(r->base);
        destroyRegion(*r);
        delete r;
      },
      owned);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  if (!runtime) return info.Env().Undefined();
  setClosing(true);
  runtime->engine->stop();
  setClosing(false);
  // Ops still pending (a receive nobody will send to) settle instead of hanging their awaiters.
  for (Job* j : runtime->engine->takeUnfinished()) {
    j->deferred.Reject(
        Napi::Error::New(info.Env(), "dtrain: dist.close() was called while this op was pending").Value());
    delete j;
  }
  runtime->groups.clear();
  runtime.reset();
  return info.Env().Undefined();
}

// process.on('exit'): peers learn now that this process is going, not when the kernel has reaped it.
Napi::Value Exiting(const Napi::CallbackInfo& info) {
  Team::processExiting();
  return info.Env().Undefined();
}

Napi::Value SimdPath(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), simdPath()); }

Napi::Value SpinBudget(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), spinBudgetUs()); }

// Test hook: reduces plain arrays with the dispatched kernels, no group needed (checks each SIMD path).
Napi::Value ReduceLocal(const Napi::CallbackInfo& info) {
  Buf out = bufArg(info, 0);
  auto arr = info[1].As<Napi::Array>();
  DType t = dtypeArg(info, 2);
  RedOp op = redopArg(info, 3);
  std::vector<const void*> ins;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    auto ta = arr.Get(i).As<Napi::TypedArray>();
    if (ta.ByteLength() != out.bytes) throw CollectiveError("reduceLocal: lengths differ");
    ins.push_back(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  }
  reduceInto(out.data, ins.data(), int(ins.size()), out.bytes / dtypeSize(t), t, op);
  return info.Env().Undefined();
}

// The addon is built without C++ exceptions crossing into N-API: every binding converts them here.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), e.what()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
}

}  // namespace

void InitCollectives(Napi::Env env, Napi::Object exports) {
  auto c = Napi::Object::New(env);
  c.Set("init", Napi::Function::New(env, guarded<Init>));
  c.Set("newGroup", Napi::Function::New(env, guarded<NewGroup>));
  c.Set("allReduce", Napi::Function::New(env, guarded<AllReduce>));
  c.Set("reduceScatter", Napi::Function::New(env, guarded<ReduceScatter>));
  c.Set("allGather", Napi::Function::New(env, guarded<AllGather>));
  c.Set("broadcast", Napi::Function::New(env, guarded<Broadcast>));
  c.Set("barrier", Napi::Function::New(env, guarded<Barrier>));
  c.Set("send", Napi::Function::New(env, guarded<Send>));
  c.Set("recv", Napi::Function::New(env, guarded<Recv>));
  c.Set("stats", Napi::Function::New(env, guarded<Stats>));
  c.Set("alloc", Napi::Function::New(env, guarded<Alloc>));
  c.Set("close", Napi::Function::New(env, guarded<Close>));
  c.Set("exiting", Napi::Function::New(env, guarded<Exiting>));
  c.Set("simdPath", Napi::Function::New(env, guarded<SimdPath>));
  c.Set("spinBudget", Napi::Function::New(env, guarded<SpinBudget>));
  c.Set("reduceLocal", Napi::Function::New(env, guarded<ReduceLocal>));
  exports.Set("collectives", c);
}

}  // namespace dtrain
