// Waiting on shared-memory words: a bounded spin, then futex sleeps in short slices so deadlines, peer
// deaths and aborts are noticed promptly. No spinning at all when the host has more ranks than cores.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace dtrain {

using Clock = std::chrono::steady_clock;

struct Deadline {
  Clock::time_point at;
  int64_t timeoutMs;
  static Deadline in(int64_t ms) { return {Clock::now() + std::chrono::milliseconds(ms), ms}; }
  bool passed() const { return Clock::now() >= at; }
  int msLeft() const;
};

// A shared-memory doorbell: whoever changes state another process may wait on rings its own bell.
struct Bell {
  std::atomic<uint32_t> value;
  std::atomic<uint32_t> sleepers;
};

void ringBell(Bell& bell);
// Sleeps until `bell` moves from `seen` or `ms` passes (spurious wakeups allowed).
void sleepOnBell(Bell& bell, uint32_t seen, int ms);

// Spin iterations before sleeping: 0 when this host runs more ranks than it has cores.
int spinBudget();
// sched_yield rounds after the spin, before sleeping (DTRAIN_YIELD overrides).
int yieldBudget();
inline void cpuRelax() { __builtin_ia32_pause(); }

// Opens a pidfd for `pid` (-1 when the kernel lacks pidfd_open); processAlive() polls it.
int openPidfd(int pid);
bool processAlive(int pidfd, int pid);

}  // namespace dtrain
