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

// A shared-memory doorbell: whoever changes state another process may wait on rings its own bell. The
// ringer writes the bell only when someone sleeps on it: a peer reads the bell while it waits, and a write
// to that line on every publish would cost each op a cache-line transfer.
struct Bell {
  std::atomic<uint32_t> value;     // moves when a ring wakes sleepers
  std::atomic<uint32_t> sleepers;  // threads between counting themselves and leaving their sleep
};

// A full barrier: what this thread stored before is visible to others before what it loads after.
inline void fullFence() {
#if defined(__x86_64__)
  // a locked no-op on this thread's stack line: a full barrier on x86, cheaper than mfence
  asm volatile("lock orl $0, (%%rsp)" ::: "memory", "cc");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// Call after publishing what a sleeper waits for. True when someone slept on the bell (and was woken):
// that sleeper is some way from running again.
bool ringBell(Bell& bell);
// Between counting itself as a sleeper and its last look: pairs with the ringers' side of ringBell.
void sleeperFence();
// Lets this process ring bells without a barrier of its own (sleepers then pay it, with membarrier). Call
// before any peer may sleep on a bell this process rings, i.e. before the segment is shared.
void prepareRinging();
// Sleeps on `bell` until a ring moves `seen` or `ms` passes (spurious wakeups allowed).
void futexSleep(Bell& bell, uint32_t seen, int ms);

// Sleeps until the bell rings or `ms` passes, unless `ready()` holds once this thread counts as a sleeper.
// `ready` must read what ringers publish before they ring (and whatever else should end the sleep, such as
// an abort flag that is rung too). Either the ringer sees this sleeper, or this sleeper's check sees what
// the ringer published.
template <typename Ready>
void sleepOnBell(Bell& bell, int ms, Ready ready) {
  uint32_t seen = bell.value.load(std::memory_order_seq_cst);
  bell.sleepers.fetch_add(1, std::memory_order_seq_cst);
  sleeperFence();
  if (!ready()) futexSleep(bell, seen, ms);
  bell.sleepers.fetch_sub(1, std::memory_order_seq_cst);
}

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
