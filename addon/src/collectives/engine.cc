#include "collectives/engine.h"

#include <poll.h>
#include <pthread.h>

#include <set>

#include "collectives/errors.h"

namespace dtrain {

Engine::Engine(Napi::Env env) {
  delivery_->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                  "dtrain-progress", 0, 1);
  delivery_->tsfn.Unref(env);  // an idle engine must not keep the process alive
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "dtrain-progress");  // per-thread CPU in /proc names it
    // Nothing may leave this thread: an escaping exception is std::terminate, which aborts the worker
    // (and with it every rank waiting on it). A failure of the engine itself rejects what it holds.
    for (;;) {
      try {
        loop();
        return;
      } catch (const std::exception& e) {
        failAll(std::string("dtrain progress thread: ") + e.what());
      } catch (...) {
        failAll("dtrain progress thread: unknown error");
      }
    }
  });
}

Engine::~Engine() { stop(); }

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  delivery_->tsfn.Release();
}

std::vector<Job*> Engine::takeUnfinished() {
  std::vector<Job*> jobs(active_.begin(), active_.end());
  active_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  jobs.insert(jobs.end(), queue_.begin(), queue_.end());
  queue_.clear();
  return jobs;
}

bool Engine::idle() { return collectivesPending_.load(std::memory_order_acquire) == 0; }

void Engine::submit(Napi::Env env, Job* job) {
  if (delivery_->pending++ == 0) delivery_->tsfn.Ref(env);
  if (job->run) collectivesPending_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
  }
  wake_.notify_one();
}

void Engine::complete(Job* job) {
  std::shared_ptr<Delivery> d = delivery_;
  d->tsfn.BlockingCall(job, [d](Napi::Env env, Napi::Function, Job* j) {
    if (j->error.empty())
      j->deferred.Resolve(env.Undefined());
    else
      j->deferred.Reject(Napi::Error::New(env, j->error).Value());
    delete j;  // releases the buffers' references on the JS thread
    if (--d->pending == 0) d->tsfn.Unref(env);
  });
}

void Engine::failP2p(Job& j, const std::string& what) {
  try {
    j.error = j.group->fail(j.isSend ? "send" : "recv", what);
  } catch (...) {
    j.error = what;
  }
}

void Engine::failAll(const std::string& what) {
  std::vector<Job*> jobs(active_.begin(), active_.end());
  active_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs.insert(jobs.end(), queue_.begin(), queue_.end());
    queue_.clear();
  }
  for (Job* j : jobs) {
    if (j->group && !j->run)
      failP2p(*j, what);
    else
      j->error = what;
    if (j->run) collectivesPending_.fetch_sub(1, std::memory_order_acq_rel);
    complete(j);
  }
}

bool Engine::advanceP2p(Job& j) {
  size_t total = sizeof(OpHeader) + j.count * dtypeSize(j.dtype);
  try {
    for (;;) {
      size_t n = 0;
      if (j.moved < sizeof(OpHeader)) {
        uint8_t* h = reinterpret_cast<uint8_t*>(&j.header) + j.moved;
        n = j.isSend ? j.channel->trySend(h, sizeof(OpHeader) - j.moved)
                     : j.channel->tryRecv(h, sizeof(OpHeader) - j.moved);
        j.moved += n;
        if (!j.isSend && j.moved == sizeof(OpHeader))
          j.group->checkP2pHeader(j.header, j.peer, j.count, j.dtype, j.tag);
      } else if (j.moved < total) {
        uint8_t* p = j.payload + (j.moved - sizeof(OpHeader));
        n = j.isSend ? j.channel->trySend(p, total - j.moved) : j.channel->tryRecv(p, total - j.moved);
        j.moved += n;
      }
      if (j.moved == total) {
        j.group->recordP2p(j.isSend, j.peer, j.count * dtypeSize(j.dtype));
        return true;
      }
      if (n == 0) break;
    }
    if (j.deadline.passed())
      throw CollectiveError("timed out after " + std::to_string(j.deadline.timeoutMs) + " ms waiting for rank " +
                            std::to_string(j.channel->peerRank) + " to " + (j.isSend ? "receive" : "send"));
    return false;
  } catch (const std::exception& e) {
    failP2p(j, e.what());
    return true;
  }
}

void Engine::waitForProgress() {
  // A shared-memory peer that died or gave up is seen only here (its ring just stops moving); every
  // stalled job on its channel fails now, naming it, instead of waiting out collective_timeout.
  for (auto it = active_.begin(); it != active_.end();) {
    Job* j = *it;
    try {
      j->channel->checkAlive(j->isSend, !j->isSend);
      ++it;
    } catch (const std::exception& e) {
      failP2p(*j, e.what());
      it = active_.erase(it);
      complete(j);
    }
  }
  if (active_.empty()) return;
  // Sleep briefly on the sockets (TCP) or the first job's doorbell (shared memory); new jobs wake us
  // within the millisecond either way.
  std::vector<pollfd> fds;
  for (Job* j : active_)
    if (j->channel->pollFd() >= 0) fds.push_back({j->channel->pollFd(), short(j->isSend ? POLLOUT : POLLIN), 0});
  if (!fds.empty()) {
    ::poll(fds.data(), fds.size(), 1);
    return;
  }
  Job* j = active_.front();
  try {
    j->channel->waitReady(j->isSend, !j->isSend, 1);
  } catch (const std::exception& e) {
    failP2p(*j, e.what());
    active_.pop_front();
    complete(j);
  }
}

void Engine::loop() {
  int idleRounds = 0;
  for (;;) {
    Job* next = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (active_.empty()) wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      if (!queue_.empty()) {
        next = queue_.front();
        queue_.pop_front();
      }
    }
    if (next && next->run) {
      try {
        next->run();
      } catch (const std::exception& e) {
        next->error = e.what();
      } catch (...) {
        next->error = "collective failed with an unknown error";
      }
      collectivesPending_.fetch_sub(1, std::memory_order_acq_rel);
      complete(next);
      continue;
    }
    if (next) active_.push_back(next);
    // Advance the first p2p job of each channel and direction (later ones wait their turn: streams are ordered).
    bool progress = next != nullptr;
    std::set<std::pair<Channel*, bool>> busy;
    for (auto it = active_.begin(); it != active_.end();) {
      Job* j = *it;
      auto lane = std::make_pair(j->channel, j->isSend);
      if (busy.count(lane)) {
        ++it;
        continue;
      }
      busy.insert(lane);
      size_t before = j->moved;
      bool finished = advanceP2p(*j);
      progress = progress || finished || j->moved != before;
      if (finished) {
        it = active_.erase(it);
        complete(j);
      } else {
        ++it;
      }
    }
    if (progress) {
      idleRounds = 0;
      continue;
    }
    if (++idleRounds < 200) {
      cpuRelax();
      continue;
    }
    waitForProgress();
  }
}

}  // namespace dtrain
