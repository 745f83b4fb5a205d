// A single-threaded poll(2) loop with timers: the native agent waits on its stdin, its store connection,
// the workers' proxy socket and pipes, and a signalfd, all in one thread, as the Node agent does on libuv.
#pragma once
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace dtrain::agent {

inline int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Writes all of `bytes`, waiting where the fd is non-blocking and full; gives up on an error (a full disk
// loses log lines, a closed channel loses output: neither may stop the agent).
inline void writeFully(int fd, const std::string& bytes) {
  size_t done = 0;
  while (fd >= 0 && done < bytes.size()) {
    ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
    if (w >= 0) {
      done += size_t(w);
    } else if (errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 1000);
    } else if (errno != EINTR) {
      return;
    }
  }
}

class Loop {
 public:
  using FdCallback = std::function<void(short revents)>;

  // Replaces any earlier watch of fd. `events` 0 keeps the fd registered but not polled.
  void watch(int fd, short events, FdCallback cb) { fds_[fd] = Watch{events, std::move(cb), ++generation_}; }
  void setEvents(int fd, short events) {
    auto it = fds_.find(fd);
    if (it != fds_.end()) it->second.events = events;
  }
  void unwatch(int fd) { fds_.erase(fd); }

  uint64_t after(int64_t ms, std::function<void()> cb) {
    uint64_t id = ++nextTimer_;
    timers_.emplace(id, Timer{nowMs() + ms, std::move(cb)});
    return id;
  }
  void cancel(uint64_t timer) { timers_.erase(timer); }

  // One poll round: waits for the first fd or timer (at most maxWaitMs), runs what is due.
  void once(int maxWaitMs = 60000) {
    int64_t wait = maxWaitMs;
    int64_t now = nowMs();
    for (const auto& [id, t] : timers_) wait = std::min<int64_t>(wait, std::max<int64_t>(0, t.at - now));
    std::vector<pollfd> pfds;
    std::vector<uint64_t> gens;
    for (const auto& [fd, w] : fds_) {
      if (!w.events) continue;
      pfds.push_back(pollfd{fd, w.events, 0});
      gens.push_back(w.generation);
    }
    int n = poll(pfds.data(), pfds.size(), static_cast<int>(wait));
    if (n > 0) {
      for (size_t i = 0; i < pfds.size(); i++) {
        if (!pfds[i].revents) continue;
        auto it = fds_.find(pfds[i].fd);
        // Gone or replaced by a callback earlier in this round: the readiness was not about it.
        if (it == fds_.end() || it->second.generation != gens[i]) continue;
        FdCallback cb = it->second.cb;
        cb(pfds[i].revents);
      }
    }
    now = nowMs();
    std::vector<uint64_t> due;
    for (const auto& [id, t] : timers_)
      if (t.at <= now) due.push_back(id);
    for (uint64_t id : due) {
      auto it = timers_.find(id);
      if (it == timers_.end()) continue;
      auto cb = std::move(it->second.cb);
      timers_.erase(it);
      cb();
    }
  }

 private:
  struct Watch {
    short events;
    FdCallback cb;
    uint64_t generation;
  };
  struct Timer {
    int64_t at;
    std::function<void()> cb;
  };
  std::map<int, Watch> fds_;
  std::map<uint64_t, Timer> timers_;
  uint64_t generation_ = 0;
  uint64_t nextTimer_ = 0;
};

}  // namespace dtrain::agent
