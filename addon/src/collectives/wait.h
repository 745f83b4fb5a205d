// Waiting on shared-memory words: a spin bounded in time, then futex sleeps in short slices so deadlines,
// peer deaths and aborts are noticed promptly. No spinning at all when the host has more ranks than cores.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace dtrain {

using Clock = std::chrono::steady_clock;

// Starts counting when first consulted, which is when a wait stops spinning: an op that never waits
// (the small all-reduce, mostly) reads no clock, and a timeout runs at most that spin long.
struct Deadline {
  int64_t timeoutMs = 0;
  static Deadline in(int64_t ms) {
    Deadline d;
    d.timeoutMs = ms;
    return d;
  }
  bool passed() const { return Clock::now() >= at(); }
  int msLeft() const;

 private:
  Clock::time_point at() const {
    if (!started_) {
      at_ = Clock::now() + std::chrono::milliseconds(timeoutMs);
      started_ = true;
    }
    return at_;
  }
  mutable Clock::time_point at_{};
  mutable bool started_ = false;
};

// Set by dist.close() while it stops the progress thread: a collective still waiting there for a
// peer gives up at its next look instead of holding close() until collective_timeout.
void setClosing(bool closing);
bool closing();

// A shared-memory doorbell: whoever changes state another process may wait on rings its own bell.
struct Bell {
  std::atomic<uint32_t> value;
  std::atomic<uint32_t> sleepers;
};

// True when someone slept on the bell (and was woken): that sleeper is some way from running again.
bool ringBell(Bell& bell);
// Sleeps until `bell` moves from `seen` or `ms` passes (spurious wakeups allowed).
void sleepOnBell(Bell& bell, uint32_t seen, int ms);

// How long a wait spins before it sleeps on the peer's bell, in microseconds: 20, or 0 when this host
// runs more ranks than this process may use CPUs (DTRAIN_SPIN overrides).
int spinBudgetUs();
// How long a wait may spin instead when this rank has just woken the peer it waits for: 200, or the
// spin budget when that is longer or 0.
int wakeSpinBudgetUs();
inline void cpuRelax() { __builtin_ia32_pause(); }

// Opens a pidfd for `pid` (-1 when the kernel lacks pidfd_open); processAlive() polls it.
int openPidfd(int pid);
bool processAlive(int pidfd, int pid);

}  // namespace dtrain
