// The one progress thread of the process (never libuv's pool): collectives queue here when they are
// large or others are pending, and run in posting order; point-to-point ops advance side by side as
// small state machines so a send and a receive posted together cannot block each other.
// Completions reach JavaScript through a thread-safe function.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collectives/group.h"

namespace dtrain {

struct Job {
  std::function<void()> run;  // collectives: the blocking call
  // point to point (run is empty): the stream to move, in order: header then payload
  Group* group = nullptr;
  Channel* channel = nullptr;
  bool isSend = false;
  int peer = -1, tag = 0;
  DType dtype = DType::f32;
  size_t count = 0;
  uint8_t* payload = nullptr;
  OpHeader header{};
  size_t moved = 0;  // bytes of header+payload done
  Deadline deadline{};

  Napi::Promise::Deferred deferred;
  std::vector<Napi::ObjectReference> keepAlive;
  std::string error;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class Engine {
 public:
  explicit Engine(Napi::Env env);
  ~Engine();
  // True when a collective may run inline on the calling thread now (nothing queued or running).
  bool idle();
  void submit(Napi::Env env, Job* job);
  void stop();
  // After stop(): the jobs that never finished (queued, or p2p in flight), handed to the caller.
  std::vector<Job*> takeUnfinished();

 private:
  void loop();
  bool advanceP2p(Job& job);  // true when finished (error set on failure)
  // Sleeps until a stalled p2p job may move; a job whose peer is gone is failed and completed here.
  void waitForProgress();
  // Fails `job` (poisoning its group) with `what`; the caller completes it.
  void failP2p(Job& job, const std::string& what);
  // Last resort when an exception escapes the loop: rejects every job it holds so no promise hangs.
  void failAll(const std::string& what);
  void complete(Job* job);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  std::list<Job*> active_;  // p2p in flight, in posting order (the first per channel and direction moves)
  // collectives submitted and not finished: idle() reads it without the lock on every small op
  std::atomic<int> collectivesPending_{0};
  bool stopping_ = false;
  // What completion callbacks touch. Shared with them because it must outlive the engine: a callback
  // queued just before dist.close() runs on the JS thread after the engine is gone.
  struct Delivery {
    int pending = 0;  // jobs submitted and not yet settled; touched on the JS thread only
    Napi::ThreadSafeFunction tsfn;
  };
  std::shared_ptr<Delivery> delivery_ = std::make_shared<Delivery>();
  std::thread thread_;
};

}  // namespace dtrain
