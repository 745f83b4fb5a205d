// NCCL communicators for JavaScript. Every call that can block (communicator init and split, which wait for
// all ranks, and every collective, which waits for its stream under the C ABI's watchdog) runs on a thread
// of its communicator, never on the JS thread and never in libuv's small pool: one thread per communicator
// keeps its ops in call order, which NCCL requires to match across ranks. Promises settle from there through
// one thread-safe function that keeps the event loop alive only while an op is outstanding.
#include "cuda_loader/nccl_bindings.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_loader/cuda_part.h"

namespace dtrain::cuda {
namespace {

// The op codes of src/runtime/nccl/native.ts.
enum OpKind { kAllReduce = 0, kReduceScatter = 1, kAllGather = 2, kBroadcast = 3, kSend = 4, kRecv = 5 };

struct Outcome {
  int rc = 0;
  std::string error;
  double value = 0;  // the new handle, for init and split
};

struct NcclJob {
  std::function<Outcome()> run;  // on the communicator's thread
  Napi::Promise::Deferred deferred;
  std::vector<Napi::ObjectReference> keep;  // host arrays the thread reads or writes
  std::function<void()> onSettled;          // on the JS thread, after the promise settles
  // Ops under the watchdog always finish, so an outstanding one keeps the process alive. Init and split
  // wait for every rank with no watchdog of their own: the caller's timer bounds them and keeps the loop alive.
  bool keepsAlive = true;
  Outcome outcome;
  explicit NcclJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

const char* CodeName(int rc) {
  switch (rc) {
    case DTRAIN_CUDA_ETIMEOUT:
      return "ETIMEOUT";
    case DTRAIN_CUDA_ENCCL:
      return "ENCCL";
    case DTRAIN_CUDA_ECUDA:
      return "ECUDA";
    case DTRAIN_CUDA_EARG:
      return "EARG";
  }
  return "EUNKNOWN";
}

// The failure of the call that just returned `rc` on this thread (the C ABI's last error is thread-local).
Outcome Failed(int rc) {
  Outcome o;
  o.rc = rc;
  o.error = g_part.dtrain_cuda_last_error();
  return o;
}

// Delivers finished jobs to the JS thread. Unref'd while idle so an idle communicator never keeps the
// process alive; Ref'd while any op is outstanding so a pending await does.
class Completions {
 public:
  void submitted(Napi::Env env, const NcclJob* job) {
    if (!tsfn_) {
      tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "dtrain-nccl", 0, 1);
      tsfn_.Unref(env);
    }
    if (job->keepsAlive && pending_++ == 0) tsfn_.Ref(env);
  }

  // From a communicator thread.
  void complete(NcclJob* job) {
    if (closed_) return;  // the environment is going away: nobody awaits the promise
    tsfn_.BlockingCall(job, [this](Napi::Env env, Napi::Function, NcclJob* j) {
      if (j->outcome.rc == 0) {
        j->deferred.Resolve(Napi::Number::New(env, j->outcome.value));
      } else {
        auto err = Napi::Error::New(env, j->outcome.error);
        err.Set("code", Napi::String::New(env, CodeName(j->outcome.rc)));
        j->deferred.Reject(err.Value());
      }
      if (j->onSettled) j->onSettled();
      if (j->keepsAlive && --pending_ == 0) tsfn_.Unref(env);
      delete j;
    });
  }

  void close() {
    closed_ = true;
    if (tsfn_) tsfn_.Release();
  }

 private:
  Napi::ThreadSafeFunction tsfn_;
  int pending_ = 0;  // JS thread only
  std::atomic<bool> closed_{false};
};

Completions* g_done = nullptr;

class CommThread {
 public:
  explicit CommThread(int device) : device_(device), thread_([this] { loop(); }) {}
  // Destroyed joined (destroy, cleanup hook) or never (leaked with a stuck op): a joinable std::thread
  // here would be std::terminate.
  ~CommThread() {
    if (thread_.joinable()) stopAndJoin(false);
  }

  void submit(NcclJob* job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(job);
    }
    wake_.notify_one();
  }

  // After the queued jobs: the thread ends. Joins when idle; a thread stuck in an op (its watchdog will
  // end it) is left to finish on its own, and this object with it.
  bool stopAndJoin(bool force) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      if (force && (running_ || !queue_.empty())) {
        thread_.detach();
        return false;
      }
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    return true;
  }

 private:
  void loop() {
    for (;;) {
      NcclJob* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
        running_ = true;
      }
      // The CUDA device is per thread: select it before anything touches memory, or device 0 gets a context.
      if (int rc = g_part.dtrain_cuda_set_device(device_))
        job->outcome = Failed(rc);
      else
        job->outcome = job->run();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        running_ = false;
      }
      g_done->complete(job);
    }
  }

  const int device_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<NcclJob*> queue_;
  bool stopping_ = false;
  bool running_ = false;
  std::thread thread_;
};

struct Slot {
  dtrain_nccl_comm* comm = nullptr;  // written by its init/split job, read by later jobs (ordered by the JS await)
  int device = 0;
  bool destroyed = false;
  void* envelope = nullptr;  // device memory for p2p envelopes; used on the communicator's thread only
  std::unique_ptr<CommThread> thread;
};

// Point-to-point messages travel behind an envelope {tag, count, dtype}, so the receiver checks what it
// gets as the CPU transports do (NCCL itself matches by order only and would deliver a wrong-sized message
// as garbage or hang). A receive whose envelope does not match still drains the payload, so the channel
// stays in step, and fails naming both sides.
constexpr size_t kDtypeBytes[] = {4, 8, 4, 8, 2, 2};
const char* const kDtypeNames[] = {"float32", "float64", "int32", "int64", "bfloat16", "float16"};

int EnvelopeBuffer(Slot* slot) {
  if (slot->envelope) return 0;
  return g_part.dtrain_cuda_malloc(&slot->envelope, 3 * sizeof(int64_t));
}

Outcome SendTagged(Slot* slot, const void* payload, size_t count, int dtype, int peer, int64_t tag) {
  int64_t env[3] = {tag, (int64_t)count, dtype};
  if (int rc = EnvelopeBuffer(slot)) return Failed(rc);
  if (int rc = g_part.dtrain_cuda_h2d(slot->envelope, env, sizeof env)) return Failed(rc);
  if (int rc = g_part.dtrain_nccl_send(slot->comm, slot->envelope, 3, DTRAIN_I64, peer)) return Failed(rc);
  if (int rc = g_part.dtrain_nccl_send(slot->comm, payload, count, dtype, peer)) return Failed(rc);
  return Outcome{};
}

Outcome RecvTagged(Slot* slot, void* payload, size_t count, int dtype, int peer, int64_t tag) {
  int64_t env[3];
  if (int rc = EnvelopeBuffer(slot)) return Failed(rc);
  if (int rc = g_part.dtrain_nccl_recv(slot->comm, slot->envelope, 3, DTRAIN_I64, peer)) return Failed(rc);
  if (int rc = g_part.dtrain_cuda_d2h(env, slot->envelope, sizeof env)) return Failed(rc);
  if (env[0] == tag && env[1] == (int64_t)count && env[2] == dtype) {
    if (int rc = g_part.dtrain_nccl_recv(slot->comm, payload, count, dtype, peer)) return Failed(rc);
    return Outcome{};
  }
  Outcome o;
  o.rc = DTRAIN_CUDA_EARG;
  if (env[2] < 0 || env[2] > 5 || env[1] < 0) {
    o.error = "the message from peer " + std::to_string(peer) + " has no valid envelope (a send/recv of another kind?)";
    return o;  // nothing sane to drain
  }
  void* scratch = nullptr;
  size_t bytes = (size_t)env[1] * kDtypeBytes[env[2]];
  if (g_part.dtrain_cuda_malloc(&scratch, bytes) == 0) {
    g_part.dtrain_nccl_recv(slot->comm, scratch, (size_t)env[1], (int)env[2], peer);
    g_part.dtrain_cuda_free(scratch);
  }
  o.error = "expected tag " + std::to_string(tag) + " with " + std::to_string(count) + " " + kDtypeNames[dtype] +
            " elements from peer " + std::to_string(peer) + "; it sent tag " + std::to_string(env[0]) + " with " +
            std::to_string(env[1]) + " " + kDtypeNames[env[2]];
  return o;
}
// Handles are indices; JS thread only. Never destroyed: process.exit() runs static destructors while
// communicator threads may still be running (a joinable std::thread's destructor aborts the process).
std::vector<std::unique_ptr<Slot>>& g_slots = *new std::vector<std::unique_ptr<Slot>>();

Napi::Value Throw(Napi::Env env, const std::string& what) {
  Napi::Error::New(env, what).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool PartLoaded(Napi::Env env) {
  if (g_part.lib) return true;
  Throw(env, "the CUDA part is not loaded");
  return false;
}

Slot* SlotArg(const Napi::CallbackInfo& info, size_t i) {
  uint32_t h = info[i].As<Napi::Number>().Uint32Value();
  if (h >= g_slots.size() || g_slots[h]->destroyed) {
    Throw(info.Env(), "invalid or destroyed NCCL communicator");
    return nullptr;
  }
  return g_slots[h].get();
}

Napi::Value Submit(Napi::Env env, Slot* slot, NcclJob* job) {
  Napi::Promise promise = job->deferred.Promise();
  g_done->submitted(env, job);
  slot->thread->submit(job);
  return promise;
}

Slot* NewSlot(int device) {
  auto slot = std::make_unique<Slot>();
  slot->device = device;
  slot->thread = std::make_unique<CommThread>(device);
  g_slots.push_back(std::move(slot));
  return g_slots.back().get();
}

// ncclLoad(path?): { version, path }; throws the loader's reason.
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (g_part.dtrain_nccl_load(path.empty() ? nullptr : path.c_str()) != 0)
    return Throw(env, g_part.dtrain_cuda_last_error());
  int version = 0;
  if (g_part.dtrain_nccl_version(&version) != 0) return Throw(env, g_part.dtrain_cuda_last_error());
  auto out = Napi::Object::New(env);
  out.Set("version", version);
  out.Set("path", g_part.dtrain_nccl_loaded_path());
  return out;
}

// ncclUniqueId(): a 128-byte Buffer (rank 0 of a group makes it and publishes it through the store).
Napi::Value UniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  auto id = Napi::Buffer<uint8_t>::New(env, 128);
  if (g_part.dtrain_nccl_unique_id(id.Data()) != 0) return Throw(env, g_part.dtrain_cuda_last_error());
  return id;
}

// ncclCommInit(id: Buffer, nranks, rank, device, timeoutMs): Promise<handle>. Waits for every rank.
Napi::Value CommInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  if (!info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != 128)
    return Throw(env, "ncclCommInit: the unique id must be a 128-byte Buffer");
  auto raw = info[0].As<Napi::Buffer<uint8_t>>();
  auto id = std::make_shared<std::vector<uint8_t>>(raw.Data(), raw.Data() + 128);
  int nranks = info[1].As<Napi::Number>().Int32Value();
  int rank = info[2].As<Napi::Number>().Int32Value();
  int device = info[3].As<Napi::Number>().Int32Value();
  int timeoutMs = info[4].As<Napi::Number>().Int32Value();
  Slot* slot = NewSlot(device);
  double handle = double(g_slots.size() - 1);
  auto* job = new NcclJob(env);
  job->keepsAlive = false;
  job->run = [=]() {
    dtrain_nccl_comm* comm = nullptr;
    if (int rc = g_part.dtrain_nccl_comm_init(&comm, id->data(), nranks, rank, device, timeoutMs)) return Failed(rc);
    slot->comm = comm;
    Outcome o;
    o.value = handle;
    return o;
  };
  return Submit(env, slot, job);
}

// ncclCommSplit(parent, color, key): Promise<handle>. Collective over the parent: every parent rank calls it.
Napi::Value CommSplit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  Slot* parent = SlotArg(info, 0);
  if (!parent) return env.Undefined();
  int color = info[1].As<Napi::Number>().Int32Value();
  int key = info[2].As<Napi::Number>().Int32Value();
  Slot* child = NewSlot(parent->device);
  double handle = double(g_slots.size() - 1);
  auto* job = new NcclJob(env);
  job->keepsAlive = false;
  // Runs on the parent's thread: a split is an op of the parent, ordered with its other ops.
  job->run = [=]() {
    dtrain_nccl_comm* comm = nullptr;
    if (int rc = g_part.dtrain_nccl_comm_split(parent->comm, color, key, &comm)) return Failed(rc);
    child->comm = comm;
    Outcome o;
    o.value = handle;
    return o;
  };
  return Submit(env, parent, job);
}

// ncclCommDestroy(handle): Promise, after the communicator's queued ops; its thread ends with it.
Napi::Value CommDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  Slot* slot = SlotArg(info, 0);
  if (!slot) return env.Undefined();
  slot->destroyed = true;
  auto* job = new NcclJob(env);
  job->run = [slot]() {
    if (slot->envelope) g_part.dtrain_cuda_free(slot->envelope);
    slot->envelope = nullptr;
    if (int rc = g_part.dtrain_nccl_comm_destroy(slot->comm)) return Failed(rc);
    slot->comm = nullptr;
    return Outcome{};
  };
  job->onSettled = [slot]() { slot->thread->stopAndJoin(false); };
  return Submit(env, slot, job);
}

// ncclRun(handle, kind, sendPtr, recvPtr, count, dtype, arg, hostIn, hostOut, tag): Promise.
// `arg` is the reduce op, the broadcast root or the p2p peer; `tag` goes in a p2p message's envelope. A typed array in
// `hostIn` is copied to sendPtr first and `hostOut` receives recvPtr after: typed arrays on the NCCL backend are staged
// through device buffers on the communicator's thread, so the JS thread never waits on a copy either.
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!PartLoaded(env)) return env.Undefined();
  Slot* slot = SlotArg(info, 0);
  if (!slot) return env.Undefined();
  int kind = info[1].As<Napi::Number>().Int32Value();
  void* send = (void*)(uintptr_t)info[2].As<Napi::Number>().Int64Value();
  void* recv = (void*)(uintptr_t)info[3].As<Napi::Number>().Int64Value();
  size_t count = (size_t)info[4].As<Napi::Number>().Int64Value();
  int dtype = info[5].As<Napi::Number>().Int32Value();
  int arg = info[6].As<Napi::Number>().Int32Value();
  int64_t tag = info.Length() > 9 && info[9].IsNumber() ? info[9].As<Napi::Number>().Int64Value() : 0;
  if (dtype < 0 || dtype > 5) return Throw(env, "ncclRun: unknown dtype code " + std::to_string(dtype));
  auto* job = new NcclJob(env);
  struct Host {
    uint8_t* data = nullptr;
    size_t bytes = 0;
  } in, out;
  auto hostArg = [&](size_t i, Host* h) {
    if (info.Length() <= i || !info[i].IsTypedArray()) return;
    auto ta = info[i].As<Napi::TypedArray>();
    h->data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    h->bytes = ta.ByteLength();
    job->keep.push_back(Napi::Persistent(ta.As<Napi::Object>()));
  };
  hostArg(7, &in);
  hostArg(8, &out);
  job->run = [=]() {
    if (in.data && in.bytes)
      if (int rc = g_part.dtrain_cuda_h2d(send, in.data, in.bytes)) return Failed(rc);
    dtrain_nccl_comm* c = slot->comm;
    int rc = DTRAIN_CUDA_EARG;
    switch (kind) {
      case kAllReduce:
        rc = g_part.dtrain_nccl_all_reduce(c, send, recv, count, dtype, arg);
        break;
      case kReduceScatter:
        rc = g_part.dtrain_nccl_reduce_scatter(c, send, recv, count, dtype, arg);
        break;
      case kAllGather:
        rc = g_part.dtrain_nccl_all_gather(c, send, recv, count, dtype);
        break;
      case kBroadcast:
        rc = g_part.dtrain_nccl_broadcast(c, send, recv, count, dtype, arg);
        break;
      case kSend: {
        Outcome o = SendTagged(slot, send, count, dtype, arg, tag);
        if (o.rc) return o;
        rc = 0;
        break;
      }
      case kRecv: {
        Outcome o = RecvTagged(slot, recv, count, dtype, arg, tag);
        if (o.rc) return o;
        rc = 0;
        break;
      }
      default: {
        Outcome o;
        o.rc = DTRAIN_CUDA_EARG;
        o.error = "unknown NCCL op " + std::to_string(kind);
        return o;
      }
    }
    if (rc) return Failed(rc);
    if (out.data && out.bytes)
      if (int rc2 = g_part.dtrain_cuda_d2h(out.data, recv, out.bytes)) return Failed(rc2);
    return Outcome{};
  };
  return Submit(env, slot, job);
}
}  // namespace

void InitNcclBindings(Napi::Env env, Napi::Object cuda) {
  if (!g_done) g_done = new Completions();
  cuda.Set("ncclLoad", Napi::Function::New(env, Load));
  cuda.Set("ncclUniqueId", Napi::Function::New(env, UniqueId));
  cuda.Set("ncclCommInit", Napi::Function::New(env, CommInit));
  cuda.Set("ncclCommSplit", Napi::Function::New(env, CommSplit));
  cuda.Set("ncclCommDestroy", Napi::Function::New(env, CommDestroy));
  cuda.Set("ncclRun", Napi::Function::New(env, Run));
  // A process that exits with communicators open: end idle threads while the environment exists; one
  // stuck in an op is left to its watchdog (the process is exiting anyway).
  env.AddCleanupHook([] {
    g_done->close();
    // A stuck thread still uses its slot: both are leaked on purpose.
    for (auto& slot : g_slots)
      if (slot->thread && !slot->thread->stopAndJoin(true)) {
        (void)slot->thread.release();
        (void)slot.release();
      }
    g_slots.clear();
  });
}
}  // namespace dtrain::cuda
