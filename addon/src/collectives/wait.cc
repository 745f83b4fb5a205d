#include "collectives/wait.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace dtrain {

namespace {
std::atomic<bool> closingFlag{false};
}  // namespace

void setClosing(bool c) { closingFlag.store(c, std::memory_order_release); }
bool closing() { return closingFlag.load(std::memory_order_acquire); }

int Deadline::msLeft() const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at() - Clock::now()).count();
  return left < 0 ? 0 : int(left);
}

namespace {
// The publish-then-look-for-sleepers of every ring needs a full barrier (Dekker's pattern with the sleeper's
// count-then-look), which drains the store buffer: with the message just copied into the slot, a good part
// of a small op. membarrier moves that cost to the rare sleeper: its call makes every CPU that runs a thread
// of a registered process execute a barrier, so a ringer of a registered process needs none.
bool membarrierCmd(int cmd) {
#ifdef SYS_membarrier
  return ::syscall(SYS_membarrier, cmd, 0, 0) == 0;
#else
  (void)cmd;
  return false;
#endif
}
bool kernelHasGlobalMembarrier() {
#ifdef SYS_membarrier
  static const bool has = [] {
    long cmds = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  }();
  return has;
#else
  return false;
#endif
}
std::atomic<bool> ringsWithoutFence{false};
}  // namespace

void prepareRinging() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A host with more ranks than cores (no spin) sleeps on every wait: there each sleep's membarrier would
    // interrupt every CPU running a rank, so ringers keep their own barrier.
    if (spinBudgetUs() > 0 && kernelHasGlobalMembarrier() && membarrierCmd(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
      ringsWithoutFence.store(true, std::memory_order_release);
  });
}

void sleeperFence() {
  fullFence();
  // Also when this process could not register: the ringers' processes may have.
  if (kernelHasGlobalMembarrier()) membarrierCmd(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}

bool ringBell(Bell& bell) {
  if (ringsWithoutFence.load(std::memory_order_relaxed))
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler keeps the publish before the look
  else
    fullFence();
  if (bell.sleepers.load(std::memory_order_relaxed) == 0) return false;
  bell.value.fetch_add(1, std::memory_order_seq_cst);
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&bell.value), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  return true;
}

void futexSleep(Bell& bell, uint32_t seen, int ms) {
  timespec ts{ms / 1000, long(ms % 1000) * 1000000L};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&bell.value), FUTEX_WAIT, seen, &ts, nullptr, 0);
}

int spinBudgetUs() {
  static const int budget = [] {
    const char* forced = std::getenv("DTRAIN_SPIN");
    if (forced) return std::atoi(forced);
    const char* local = std::getenv("LOCAL_WORLD_SIZE");
    // The CPUs this process may run on (taskset, Slurm's --cpus-per-task binding), not the machine's.
    cpu_set_t set;
    unsigned cores = ::sched_getaffinity(0, sizeof(set), &set) == 0 ? unsigned(CPU_COUNT(&set))
                                                                    : std::thread::hardware_concurrency();
    unsigned ranks = local ? unsigned(std::atoi(local)) : 1;
    // Bounded in time, not in pause instructions (a pause costs 10 to 150 cycles depending on the CPU):
    // a peer that is running answers a small op within a few microseconds; one that is not (preempted,
    // waiting for a core) needs the core this rank would spin on, so after 20 us the rank sleeps and
    // the peer's bell wakes it. Spinning longer, or sched_yield rounds, made the tail worse under
    // load: 100k 4 KiB all-reduces, p99 13 ms with 20000 pauses plus 50 yields (docs/performance.md).
    return ranks <= cores ? 20 : 0;
  }();
  return budget;
}

int wakeSpinBudgetUs() {
  // A woken peer runs again only once the kernel (and, in a VM, the host) has brought its idle CPU back:
  // about 100 us on a KVM guest without a cpuidle driver, longer than spinBudgetUs(). A rank that woke
  // its peer and then slept in turn would need the same wake-up back, op after op.
  int spin = spinBudgetUs();
  return spin > 0 ? std::max(spin, 200) : 0;
}

int openPidfd(int pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -1 : int(fd);
#else
  return -1;
#endif
}

bool processAlive(int pidfd, int pid) {
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;  // readable once the process has exited (zombies included)
  }
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

}  // namespace dtrain
