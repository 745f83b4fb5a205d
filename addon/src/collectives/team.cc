#include "collectives/team.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include "collectives/errors.h"
#include "collectives/reduce.h"
#include "collectives/shm_channel.h"

namespace dtrain {

const char* opKindName(OpKind k) {
  switch (k) {
    case OpKind::allReduce:
      return "allReduce";
    case OpKind::reduceScatter:
      return "reduceScatter";
    case OpKind::allGather:
      return "allGather";
    case OpKind::broadcast:
      return "broadcast";
    case OpKind::barrier:
      return "barrier";
  }
  return "?";
}

size_t stagingBytes() {
  static const size_t bytes = [] {
    const char* v = std::getenv("DTRAIN_SHM_STAGING_BYTES");
    size_t b = v ? size_t(std::strtoull(v, nullptr, 10)) : size_t(4) << 20;
    return std::max<size_t>(b, 64 * 1024) & ~size_t(63);
  }();
  return bytes;
}

namespace {
constexpr size_t kCtlBytes = 4096;
// The zero-copy all-reduce reduces and writes out blocks of this size (inputs and result stay in L1/L2).
constexpr size_t kZeroCopyBlockBytes = 16 * 1024;
// the small all-reduce asks for this much of each peer's slot before reducing it
constexpr size_t kPrefetchBytes = 4096;
constexpr size_t kReasonBytes = 480;
}  // namespace

namespace {
// Ctl::aborted: why a member stopped answering (0: it has not).
constexpr uint32_t kFailed = 1;  // an op failed there; `reason` says why
constexpr uint32_t kExited = 2;  // its process is exiting
constexpr uint32_t kClosed = 3;  // it closed the group (dist.close())

// Teams alive in this process, so an exiting process can tell its peers at once (they would otherwise
// learn it only when the kernel has torn the process down, after the launcher may have stopped them).
std::mutex& liveMutex() {
  static auto* m = new std::mutex();  // never destroyed: used from atexit
  return *m;
}
std::set<Team*>& liveTeams() {
  static auto* teams = new std::set<Team*>();  // never destroyed: used from atexit
  return *teams;
}
}  // namespace

struct Team::Ctl {
  alignas(64) Bell bell;
  std::atomic<int32_t> cpu;                  // 1 + the CPU this member last waited on (0: not yet)
  alignas(64) std::atomic<uint64_t> posted;  // seq of the latest round whose desc is valid
  alignas(64) std::atomic<uint64_t> phase;   // seq of the latest round whose reduced slice is ready
  alignas(64) std::atomic<uint64_t> done;    // seq of the latest round this member stopped reading peers in
  alignas(64) OpDesc desc;
  alignas(64) std::atomic<uint32_t> aborted;
  char reason[kReasonBytes];
  // Small all-reduce, by round parity: what this member called and when its slot holds its input.
  // One cache line each, so a peer's wait and its validation read a single line.
  struct alignas(64) Small {
    std::atomic<uint64_t> epoch;  // the round whose input is in the slot of this parity
    uint32_t kind;
    uint8_t dtype, redop;
    uint16_t pad;
    int32_t root;
    uint64_t count;
  } small[2];
};

namespace {
size_t ringOffset(int peer) { return kCtlBytes + size_t(peer) * kShmRingStride; }
// two slots of kSmallBytes (by round parity) for the small all-reduce, then the staging area
size_t smallOffset(int size) { return kCtlBytes + size_t(size) * kShmRingStride; }
size_t stagingOffset(int size) { return smallOffset(size) + 2 * kSmallBytes; }
}  // namespace

Team::Team(int size, int me, const std::string& groupName)
    : size_(size), me_(me), groupName_(groupName), spinUs_(spinBudgetUs()), wakeSpinUs_(wakeSpinBudgetUs()) {
  static_assert(sizeof(Ctl) <= kCtlBytes, "control block must fit its page");
  prepareRinging();  // before any peer can map this segment and sleep on its bell
  own_ = createRegion(stagingOffset(size) + stagingBytes(), ("group " + groupName).c_str());
  new (own_.base) Ctl();  // memfd pages are zero: all counters start at 0
  bases_.assign(size_t(size), nullptr);
  pids_.assign(size_t(size), 0);
  pidfds_.assign(size_t(size), -1);
  ranks_.assign(size_t(size), -1);
  bases_[size_t(me)] = own_.base;
  pids_[size_t(me)] = ::getpid();
  static std::once_flag hooked;
  std::call_once(hooked, [] { std::atexit(Team::processExiting); });
  std::lock_guard<std::mutex> lock(liveMutex());
  liveTeams().insert(this);
}

Team::~Team() {
  {
    std::lock_guard<std::mutex> lock(liveMutex());
    liveTeams().erase(this);
  }
  leave(kClosed, "");
  for (int i = 0; i < size_; ++i) {
    if (i != me_) unmapPeerRegion(bases_[size_t(i)], own_.size);
    if (pidfds_[size_t(i)] >= 0) ::close(pidfds_[size_t(i)]);
  }
  for (auto& kv : peerAllocs_) unmapPeerRegion(kv.second.first, kv.second.second);
  destroyRegion(own_);
}

void Team::attach(const std::vector<TeamMemberInfo>& members) {
  for (int i = 0; i < size_; ++i) {
    const TeamMemberInfo& m = members[size_t(i)];
    ranks_[size_t(i)] = m.globalRank;
    if (i == me_) continue;
    pids_[size_t(i)] = m.pid;
    bases_[size_t(i)] = mapPeerRegion(m.pid, m.fd, own_.size, m.globalRank);
    pidfds_[size_t(i)] = openPidfd(m.pid);
  }
}

inline Team::Ctl& Team::ctl(int i) const { return *reinterpret_cast<Ctl*>(bases_[size_t(i)]); }
inline uint8_t* Team::staging(int i) const { return bases_[size_t(i)] + stagingOffset(size_); }
inline uint8_t* Team::smallSlot(int i, uint64_t seq) const {
  return bases_[size_t(i)] + smallOffset(size_) + (seq & 1) * kSmallBytes;
}

void Team::abort(const std::string& reason) { leave(kFailed, reason); }

void Team::leave(uint32_t why, const std::string& reason) {
  Ctl& c = ctl(me_);
  uint32_t none = 0;
  if (why == kFailed) {
    size_t n = std::min(reason.size(), kReasonBytes - 1);
    std::memcpy(c.reason, reason.data(), n);
    c.reason[n] = 0;
    c.aborted.store(kFailed, std::memory_order_release);  // a failure overrides a close or exit notice
  } else if (!c.aborted.compare_exchange_strong(none, why, std::memory_order_acq_rel)) {
    return;
  }
  ringBell(c.bell);
}

void Team::processExiting() {
  std::lock_guard<std::mutex> lock(liveMutex());
  for (Team* t : liveTeams()) t->leave(kExited, "");
}

std::string Team::peerGone(int i, const Deadline& d) {
  Ctl& c = ctl(i);
  std::string who = "rank " + std::to_string(ranks_[size_t(i)]);
  switch (c.aborted.load(std::memory_order_acquire)) {
    case kFailed:
      return who + " failed: " + std::string(c.reason, strnlen(c.reason, kReasonBytes));
    case kExited:
      return who + " died (process " + std::to_string(pids_[size_t(i)]) + " exited) during an op on group " +
             groupName_;
    case kClosed:
      return who + " closed group " + groupName_ + " (dist.close()) while this rank still waited on it";
  }
  if (!processAlive(pidfds_[size_t(i)], pids_[size_t(i)]))
    return who + " died (process " + std::to_string(pids_[size_t(i)]) + " exited) during an op on group " + groupName_;
  if (closing()) return "dist.close() was called while this op on group " + groupName_ + " waited for " + who;
  if (d.passed())
    return "timed out after " + std::to_string(d.timeoutMs) + " ms on group " + groupName_ + " waiting for " + who +
           " (collective_timeout; did every rank call the same op?)";
  return "";
}

template <typename Ready>
void Team::waitUntil(int i, Ready ready, const Deadline& d) {
  if (ready()) return;
  // Having just woken this peer, wait out its wake-up instead of sleeping in turn (then it would have to
  // wake this rank, and so on: ~100 us an op once started). A spin that still misses the peer (it is
  // not running: the cores are busy) turns this off for a while.
  bool wakeSpin = wakeSpinUs_ > spinUs_ && wokeRound_ + 1 >= seq_ && seq_ >= wakeSpinFrom_;
  int spinUs = wakeSpin ? wakeSpinUs_ : spinUs_;
  // A peer that last waited on this rank's CPU runs only when this rank stops: the scheduler may put
  // two processes that wake each other on one CPU (when the other CPU was busy for a moment), and a
  // spin there costs every op the whole spin and a context switch (~40 us an op instead of ~2).
  if (spinUs > 0) {
    int mine = ::sched_getcpu() + 1;
    if (ctl(i).cpu.load(std::memory_order_relaxed) != mine) {
      colocated_ = 0;
    } else if (++colocated_ >= kColocatedWaits && moveOffCpu(mine - 1)) {
      // Left alone the pair stays there (each wakes the other onto the CPU it runs on; measured on a VM
      // that reports no shared caches), so step onto another CPU this thread may use.
      colocated_ = 0;
      mine = ::sched_getcpu() + 1;
    } else {
      spinUs = 0, wakeSpin = false;
    }
    // written only when it changed: the peer reads this line while it waits, and a store would take it away
    if (ctl(me_).cpu.load(std::memory_order_relaxed) != mine) ctl(me_).cpu.store(mine, std::memory_order_relaxed);
  }
  if (spinUs > 0) {
    // the clock is read every 64 pauses (a microsecond or so), not on every turn
    Clock::time_point until = Clock::now() + std::chrono::microseconds(spinUs);
    do {
      for (int s = 0; s < 64; ++s) {
        cpuRelax();
        if (ready()) return;
      }
    } while (Clock::now() < until);
    if (wakeSpin) wakeSpinFrom_ = seq_ + kWakeSpinPause;
  }
  Ctl& c = ctl(i);
  for (;;) {
    if (ready()) return;
    std::string gone = peerGone(i, d);
    if (!gone.empty()) {
      // A peer that published and then left (or died) did its part: everything it wrote before is
      // visible once its leaving is, so look once more before failing.
      if (ready()) return;
      throw CollectiveError(gone);
    }
    // a peer that leaves (leave()) rings its bell after setting `aborted`
    sleepOnBell(c.bell, 2, [&] { return ready() || c.aborted.load(std::memory_order_acquire) != 0; });
  }
}

bool Team::moveOffCpu(int cpu) {
  auto now = Clock::now();
  if (now - lastMove_ < std::chrono::milliseconds(kMoveEveryMs)) return false;
  lastMove_ = now;
  cpu_set_t allowed, away;
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  away = allowed;
  CPU_CLR(cpu, &away);
  if (CPU_COUNT(&away) == 0) return false;
  // Narrowing the mask moves this thread at once; widening it again leaves it where it is.
  bool moved = ::sched_setaffinity(0, sizeof(away), &away) == 0;
  ::sched_setaffinity(0, sizeof(allowed), &allowed);
  return moved;
}

void Team::waitOne(int i, std::atomic<uint64_t> Ctl::*field, uint64_t target, const Deadline& d) {
  Ctl& c = ctl(i);
  waitUntil(
      i, [&c, field, target] { return (c.*field).load(std::memory_order_acquire) >= target; }, d);
}

inline bool Team::hasPosted(int i, uint64_t seq) const {
  // A member posts a round either through its control block or, for a small all-reduce, through the
  // header of that round's parity; either way its description of the op is then readable.
  const Ctl& c = ctl(i);
  return c.posted.load(std::memory_order_acquire) >= seq ||
         c.small[seq & 1].epoch.load(std::memory_order_acquire) >= seq;
}

void Team::waitPosted(int i, uint64_t seq, const Deadline& d) {
  waitUntil(
      i, [this, i, seq] { return hasPosted(i, seq); }, d);
}

OpDesc Team::postedDesc(int i, uint64_t seq) const {
  const Ctl& c = ctl(i);
  // Ops other than the small all-reduce cannot run ahead (each starts by waiting for every peer's
  // previous round), so a control block posted at `seq` describes exactly this round.
  if (c.posted.load(std::memory_order_acquire) >= seq) return c.desc;
  const Ctl::Small& h = c.small[seq & 1];
  OpDesc o{};
  o.kind = OpKind(h.kind);
  o.dtype = h.dtype;
  o.redop = h.redop;
  o.root = h.root;
  o.count = h.count;
  return o;
}

void Team::waitAll(std::atomic<uint64_t> Ctl::*field, uint64_t target, const Deadline& d, bool includeSelf) {
  for (int i = 0; i < size_; ++i)
    if (i != me_ || includeSelf) waitOne(i, field, target, d);
}

void Team::waitAllPosted(uint64_t seq, const Deadline& d) {
  for (int i = 0; i < size_; ++i)
    if (i != me_) waitPosted(i, seq, d);
}

inline void Team::publish(std::atomic<uint64_t> Ctl::*field, uint64_t seq) {
  (ctl(me_).*field).store(seq, std::memory_order_release);
  ring();
}

inline void Team::ring() {
  if (ringBell(ctl(me_).bell)) wokeRound_ = seq_;
}

inline uint64_t Team::beginRound() { return ++seq_; }

void Team::post(const OpDesc& d) {
  ctl(me_).desc = d;
  publish(&Ctl::posted, seq_);
}

OpDesc Team::describe(OpKind k, DType t, RedOp op, int root, size_t count, const void* buf, size_t bytes) {
  // Peers' dist.alloc regions stay mapped between ops (mapping is the costly part); a program that keeps
  // allocating new buffers must not grow this without bound, so start over past a limit. Called before
  // an op looks any region up, so no pointer from the current op is invalidated.
  if (peerAllocs_.size() > 64) {
    for (auto& kv : peerAllocs_) unmapPeerRegion(kv.second.first, kv.second.second);
    peerAllocs_.clear();
  }
  OpDesc d{};
  d.kind = k;
  d.dtype = uint8_t(t);
  d.redop = uint8_t(op);
  d.root = root;
  d.count = count;
  AllocatedRef ref;
  if (buf && bytes > 0 && findAllocation(buf, bytes, ref)) {
    d.zc = 1;
    d.zcPid = ::getpid();
    d.zcFd = ref.fd;
    d.zcUid = ref.uid;
    d.zcOff = ref.offset;
    d.zcSize = ref.regionSize;
  }
  return d;
}

void Team::validate(const OpDesc& mine) {
  for (int i = 0; i < size_; ++i) {
    if (i == me_) continue;
    const OpDesc o = postedDesc(i, seq_);
    std::string what;
    auto describeOne = [](const OpDesc& x) {
      std::string s =
          std::string(opKindName(x.kind)) + "(" + dtypeName(DType(x.dtype)) + " x " + std::to_string(x.count);
      if (x.kind == OpKind::allReduce || x.kind == OpKind::reduceScatter)
        s += std::string(", ") + redOpName(RedOp(x.redop));
      if (x.kind == OpKind::broadcast) s += ", root " + std::to_string(x.root);
      return s + ")";
    };
    if (o.kind != mine.kind)
      what = "op";
    else if (o.dtype != mine.dtype)
      what = "dtype";
    else if (o.count != mine.count)
      what = "size";
    else if (o.redop != mine.redop)
      what = "reduce op";
    else if (o.root != mine.root)
      what = "root";
    if (!what.empty()) {
      // Every member sees every desc, so each reports the same mismatch (lowest differing ranks first).
      int a = std::min(me_, i), b = std::max(me_, i);
      const OpDesc& da = a == me_ ? mine : o;
      const OpDesc& db = b == me_ ? mine : o;
      throw CollectiveError(std::string(opKindName(mine.kind)) + " mismatch (" + what + ") on group " + groupName_ +
                            ": rank " + std::to_string(ranks_[size_t(a)]) + " called " + describeOne(da) + ", rank " +
                            std::to_string(ranks_[size_t(b)]) + " called " + describeOne(db));
    }
  }
}

uint8_t* Team::location(int i, const OpDesc& di) {
  if (!di.zc) return staging(i);
  if (i == me_) return nullptr;  // callers use their own pointer
  auto key = std::make_pair(i, di.zcUid);
  auto it = peerAllocs_.find(key);
  if (it == peerAllocs_.end()) {
    uint8_t* base = mapPeerRegion(di.zcPid, di.zcFd, di.zcSize, ranks_[size_t(i)]);
    it = peerAllocs_.emplace(key, std::make_pair(base, size_t(di.zcSize))).first;
  }
  return it->second.first + di.zcOff;
}

template <typename Stage, typename Body>
Team::ZeroCopy Team::inRounds(const OpDesc& mine, size_t total, size_t roundElems, int source, Stage stage, Body body,
                              const Deadline& d) {
  // Every round: wait until everyone stopped reading the previous one, stage this member's part, post,
  // wait for the posts that matter, work, and say done. The first round also checks that everyone called
  // the same op and whether the members read from (all, or the source) passed dist.alloc buffers: then
  // that round covers everything, read in place.
  ZeroCopy zc;
  size_t off = 0;
  bool first = true;
  do {
    uint64_t seq = beginRound();
    waitAll(&Ctl::done, seq - 1, d);
    size_t c = std::min(total - off, roundElems);
    stage(off, c);
    post(mine);
    if (first) {
      waitAllPosted(seq, d);
      validate(mine);
      zc.all = true;
      for (int i = 0; i < size_; ++i) {
        if (source >= 0 && i != source) continue;
        zc.all = zc.all && ctl(i).desc.zc;
        zc.any = zc.any || ctl(i).desc.zc;
      }
      if (zc.all) c = total - off;
    } else if (source < 0) {
      waitAllPosted(seq, d);
    } else if (me_ != source) {
      waitPosted(source, seq, d);
    }
    body(off, c, seq);
    publish(&Ctl::done, seq);
    // a member reading my buffer in place must finish before the caller may touch it again
    if (mine.zc && (source < 0 || me_ == source)) waitAll(&Ctl::done, seq, d);
    off += c;
    first = false;
  } while (off < total);
  return zc;
}

const char* Team::allReduce(void* buf, size_t count, DType t, RedOp op, int avgDivisor, const Deadline& d) {
  const size_t esz = dtypeSize(t), bytes = count * esz;
  uint8_t* user = static_cast<uint8_t*>(buf);
  if (bytes <= kSmallBytes) {
    // One step: everyone writes its input into its slot for this round's parity and everyone reduces
    // all the slots straight into its own buffer (same order everywhere, so the same result). Two slots
    // by parity make the usual "has everyone finished reading?" wait unnecessary: a peer reads my slot
    // of round seq-2 before it posts round seq-1, which this rank waited for in round seq-1.
    uint64_t seq = beginRound();
    if (lastSmall_ != seq - 1) waitAll(&Ctl::done, seq - 1, d);  // the previous round was another op
    uint8_t* slot = smallSlot(me_, seq);
    std::memcpy(slot, user, bytes);
    Ctl::Small& h = ctl(me_).small[seq & 1];
    h.kind = uint32_t(OpKind::allReduce);
    h.dtype = uint8_t(t);
    h.redop = uint8_t(op);
    h.root = 0;
    h.count = count;
    h.epoch.store(seq, std::memory_order_release);
    ring();
    waitAllPosted(seq, d);
    OpDesc mine{};
    mine.kind = OpKind::allReduce;
    mine.dtype = uint8_t(t);
    mine.redop = uint8_t(op);
    mine.count = count;
    validate(mine);
    const void* ins[64];
    std::vector<const void*> many;
    const void** in = ins;
    if (size_ > 64) {
      many.resize(size_t(size_));
      in = many.data();
    }
    for (int i = 0; i < size_; ++i) in[i] = i == me_ ? slot : smallSlot(i, seq);
    // The peers' slots come from other cores' caches: asking for their first lines at once overlaps those
    // transfers, which the reduce's own loads, a few lines ahead, would mostly wait for one by one (past
    // that the hardware's prefetcher follows the stream).
    const size_t ahead = std::min<size_t>(bytes, kPrefetchBytes);
    for (int i = 0; i < size_; ++i)
      if (i != me_)
        for (size_t at = 0; at < ahead; at += 64) __builtin_prefetch(static_cast<const uint8_t*>(in[i]) + at);
    reduceInto(user, in, size_, count, t, op);
    if (op == RedOp::avg) scaleForAvg(user, count, t, avgDivisor);
    // for a following op of another kind, which waits (maybe asleep on the bell) until everyone
    // stopped reading its peers
    publish(&Ctl::done, seq);
    lastSmall_ = seq;
    return "one-step";
  }
  // Reduce-scatter then all-gather, in rounds the size of the staging area unless every member's buffer
  // is a dist.alloc region, in which case everyone works on everyone's buffer in place in a single round.
  OpDesc mine = describe(OpKind::allReduce, t, op, 0, count, buf, bytes);
  std::vector<uint8_t*> loc(size_t(size_), nullptr);
  std::vector<const void*> ins(size_t(size_), nullptr);
  ZeroCopy zc = inRounds(
      mine, count, stagingBytes() / esz, -1,
      [&](size_t off, size_t n) {
        if (!mine.zc) std::memcpy(staging(me_), user + off * esz, n * esz);
      },
      [&](size_t off, size_t n, uint64_t seq) {
        bool allZc = true;
        for (int i = 0; i < size_; ++i) {
          const OpDesc& di = i == me_ ? mine : ctl(i).desc;
          loc[size_t(i)] = di.zc ? (i == me_ ? user : location(i, di)) + off * esz : staging(i);
          allZc = allZc && di.zc;
        }
        Slice s = sliceOf(n, size_, me_);
        if (allZc) {
          // Every buffer is mapped here: reduce my slice of them all and write the result into each, a block
          // at a time while it is in cache. One pass over memory and no second phase to wait for (a copy-out
          // phase would read every slice again from memory). Nobody else touches my slice of any buffer,
          // and inRounds makes each member wait until everyone is done before its buffer is handed back.
          const size_t block = std::max<size_t>(1, kZeroCopyBlockBytes / esz);
          for (size_t b = 0; b < s.count; b += block) {
            size_t m = std::min(block, s.count - b);
            for (int i = 0; i < size_; ++i) ins[size_t(i)] = loc[size_t(i)] + (s.begin + b) * esz;
            uint8_t* result = loc[size_t(me_)] + (s.begin + b) * esz;
            reduceInto(result, ins.data(), size_, m, t, op);
            if (op == RedOp::avg) scaleForAvg(result, m, t, avgDivisor);
            for (int i = 0; i < size_; ++i)
              if (i != me_) std::memcpy(loc[size_t(i)] + (s.begin + b) * esz, result, m * esz);
          }
          return;
        }
        for (int i = 0; i < size_; ++i) ins[size_t(i)] = loc[size_t(i)] + s.begin * esz;
        uint8_t* mySlice = loc[size_t(me_)] + s.begin * esz;
        reduceInto(mySlice, ins.data(), size_, s.count, t, op);
        if (op == RedOp::avg) scaleForAvg(mySlice, s.count, t, avgDivisor);
        publish(&Ctl::phase, seq);
        waitAll(&Ctl::phase, seq, d);
        for (int i = 0; i < size_; ++i) {
          Slice si = sliceOf(n, size_, i);
          uint8_t* dst = user + (off + si.begin) * esz;
          const uint8_t* src = loc[size_t(i)] + si.begin * esz;
          if (dst != src) std::memcpy(dst, src, si.count * esz);
        }
      },
      d);
  return zc.all ? "rs-ag-zero-copy" : zc.any ? "rs-ag-partly-staged" : "rs-ag-staged";
}

const char* Team::reduceScatter(const void* in, void* out, size_t n, DType t, RedOp op, int avgDivisor,
                                const Deadline& d) {
  const size_t esz = dtypeSize(t);
  const uint8_t* input = static_cast<const uint8_t*>(in);
  uint8_t* output = static_cast<uint8_t*>(out);
  OpDesc mine = describe(OpKind::reduceScatter, t, op, 0, n, in, n * size_t(size_) * esz);
  std::vector<const void*> ins(size_t(size_), nullptr);
  // a round moves up to `c` elements of each of the `size_` pieces
  ZeroCopy zc = inRounds(
      mine, n, std::max<size_t>(1, stagingBytes() / esz / size_t(size_)), -1,
      [&](size_t off, size_t c) {
        if (!mine.zc)
          for (int p = 0; p < size_; ++p)
            std::memcpy(staging(me_) + size_t(p) * c * esz, input + (size_t(p) * n + off) * esz, c * esz);
      },
      [&](size_t off, size_t c, uint64_t) {
        for (int i = 0; i < size_; ++i) {
          const OpDesc& di = i == me_ ? mine : ctl(i).desc;
          if (di.zc) {
            const uint8_t* base = i == me_ ? input : location(i, di);
            ins[size_t(i)] = base + (size_t(me_) * n + off) * esz;
          } else {
            ins[size_t(i)] = staging(i) + size_t(me_) * c * esz;
          }
        }
        if (n > 0) {
          reduceInto(output + off * esz, ins.data(), size_, c, t, op);
          if (op == RedOp::avg) scaleForAvg(output + off * esz, c, t, avgDivisor);
        }
      },
      d);
  return zc.all ? "direct-zero-copy" : "direct-staged";
}

const char* Team::allGather(const void* in, void* out, size_t n, DType t, const Deadline& d) {
  const size_t esz = dtypeSize(t);
  const uint8_t* input = static_cast<const uint8_t*>(in);
  uint8_t* output = static_cast<uint8_t*>(out);
  OpDesc mine = describe(OpKind::allGather, t, RedOp::sum, 0, n, in, n * esz);
  ZeroCopy zc = inRounds(
      mine, n, std::max<size_t>(1, stagingBytes() / esz), -1,
      [&](size_t off, size_t c) {
        if (!mine.zc) std::memcpy(staging(me_), input + off * esz, c * esz);
      },
      [&](size_t off, size_t c, uint64_t) {
        for (int i = 0; i < size_; ++i) {
          const OpDesc& di = i == me_ ? mine : ctl(i).desc;
          const uint8_t* src = di.zc ? (i == me_ ? input : location(i, di)) + off * esz : staging(i);
          std::memcpy(output + (size_t(i) * n + off) * esz, src, c * esz);
        }
      },
      d);
  return zc.all ? "direct-zero-copy" : "direct-staged";
}

const char* Team::broadcast(void* buf, size_t n, DType t, int root, const Deadline& d) {
  const size_t esz = dtypeSize(t);
  uint8_t* user = static_cast<uint8_t*>(buf);
  OpDesc mine = describe(OpKind::broadcast, t, RedOp::sum, root, n, me_ == root ? buf : nullptr, n * esz);
  ZeroCopy zc = inRounds(
      mine, n, std::max<size_t>(1, stagingBytes() / esz), root,
      [&](size_t off, size_t c) {
        if (me_ == root && !mine.zc) std::memcpy(staging(me_), user + off * esz, c * esz);
      },
      [&](size_t off, size_t c, uint64_t) {
        if (me_ == root) return;
        const OpDesc& dr = ctl(root).desc;
        const uint8_t* src = dr.zc ? location(root, dr) + off * esz : staging(root);
        std::memcpy(user + off * esz, src, c * esz);
      },
      d);
  return zc.all ? "direct-zero-copy" : "direct-staged";
}

const char* Team::barrier(const Deadline& d) {
  OpDesc mine = describe(OpKind::barrier, DType::f32, RedOp::sum, 0, 0, nullptr, 0);
  inRounds(
      mine, 0, 1, -1, [](size_t, size_t) {}, [](size_t, size_t, uint64_t) {}, d);
  return "flags";
}

std::unique_ptr<Channel> Team::channelTo(int peer) {
  auto* out = reinterpret_cast<ShmRingHdr*>(bases_[size_t(me_)] + ringOffset(peer));
  auto* in = reinterpret_cast<ShmRingHdr*>(bases_[size_t(peer)] + ringOffset(me_));
  return makeShmChannel(
      out, &ctl(me_).bell, in, &ctl(peer).bell, [this, peer] { return peerGone(peer, Deadline::in(1 << 30)); },
      ranks_[size_t(peer)]);
}

}  // namespace dtrain
