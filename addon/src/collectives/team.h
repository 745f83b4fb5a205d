// The shared-memory team: the members of a group that live on this host. Each member owns one memfd
// segment (control words, byte rings to every other member, a staging area) that all the others map.
// Collectives here are the fast paths: one-step for small messages, reduce-scatter + all-gather for
// large ones, working on peers' dist.alloc buffers in place when every member passed one (zero copy:
// an all-reduce then reduces each member's slice of every buffer and writes the result into all of them).
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collectives/channel.h"
#include "collectives/dtype.h"
#include "collectives/shm_region.h"
#include "collectives/wait.h"

namespace dtrain {

enum class OpKind : uint32_t { allReduce = 1, reduceScatter = 2, allGather = 3, broadcast = 4, barrier = 5 };
const char* opKindName(OpKind k);

struct OpDesc {
  OpKind kind;
  uint8_t dtype, redop;
  uint16_t pad;
  int32_t root;
  uint64_t count;
  // the member's buffer when it lies in a dist.alloc region (zero copy), else staged
  uint32_t zc;
  int32_t zcPid, zcFd;
  uint64_t zcUid, zcOff, zcSize;
};

struct TeamMemberInfo {
  int globalRank;
  int pid;
  int fd;  // of its segment
};

class Team {
 public:
  // `me` indexes `size` members ordered by group rank. Creates this member's segment.
  Team(int size, int me, const std::string& groupName);
  ~Team();
  int segmentFd() const { return own_.fd; }
  size_t segmentSize() const { return own_.size; }
  // Maps every other member's segment (after the store exchange of TeamMemberInfo).
  void attach(const std::vector<TeamMemberInfo>& members);

  // Each returns the algorithm's name for stats. Buffers are the caller's; counts are elements.
  const char* allReduce(void* buf, size_t count, DType t, RedOp op, int avgDivisor, const Deadline& d);
  const char* reduceScatter(const void* in, void* out, size_t countPerRank, DType t, RedOp op, int avgDivisor,
                            const Deadline& d);
  const char* allGather(const void* in, void* out, size_t countPerRank, DType t, const Deadline& d);
  const char* broadcast(void* buf, size_t count, DType t, int root, const Deadline& d);
  const char* barrier(const Deadline& d);

  // Channel from this member to member `peer` (byte rings inside the segments).
  std::unique_ptr<Channel> channelTo(int peer);
  // Marks this member failed with `reason`: peers waiting on it fail at once with that reason.
  void abort(const std::string& reason);
  // Tells the peers of every team in this process that it is exiting (process exit hooks call it).
  static void processExiting();

  int size() const { return size_; }
  int me() const { return me_; }

 private:
  struct Ctl;
  Ctl& ctl(int i) const;
  uint8_t* staging(int i) const;
  uint64_t beginRound();
  struct ZeroCopy {
    bool all = false, any = false;  // every / some member read from passed a dist.alloc buffer
  };
  // Runs an op over `total` elements in rounds of at most `roundElems`. `source` is the member everyone
  // reads from (broadcast's root) or -1 for all. stage(off, count) puts this member's part in its staging
  // area; body(off, count, seq) does the round's work.
  template <typename Stage, typename Body>
  ZeroCopy inRounds(const OpDesc& mine, size_t total, size_t roundElems, int source, Stage stage, Body body,
                    const Deadline& d);
  void post(const OpDesc& d);
  void publish(std::atomic<uint64_t> Ctl::*field, uint64_t seq);
  // Rings this member's bell, noting the round when that woke a sleeping peer.
  void ring();
  void waitAll(std::atomic<uint64_t> Ctl::*field, uint64_t target, const Deadline& d, bool includeSelf = false);
  void waitOne(int i, std::atomic<uint64_t> Ctl::*field, uint64_t target, const Deadline& d);
  template <typename Ready>
  void waitUntil(int i, Ready ready, const Deadline& d);
  // Round `seq` posted by member i (through its control block or a small all-reduce header).
  bool hasPosted(int i, uint64_t seq) const;
  void waitPosted(int i, uint64_t seq, const Deadline& d);
  // Moves this thread off `cpu` onto another CPU of its affinity mask (rate-limited); false if it did not.
  bool moveOffCpu(int cpu);
  void waitAllPosted(uint64_t seq, const Deadline& d);
  OpDesc postedDesc(int i, uint64_t seq) const;
  uint8_t* smallSlot(int i, uint64_t seq) const;
  // Why member i can no longer answer (failed, exited, closed, dead, or the deadline passed), or "".
  std::string peerGone(int i, const Deadline& d);
  void leave(uint32_t why, const std::string& reason);
  void validate(const OpDesc& mine);
  OpDesc describe(OpKind k, DType t, RedOp op, int root, size_t count, const void* buf, size_t bytes);
  // where member i's data for this round lives: its mapped dist.alloc buffer or its staging area
  uint8_t* location(int i, const OpDesc& di);

  int size_, me_;
  std::string groupName_;
  ShmRegion own_;
  std::vector<uint8_t*> bases_;
  std::vector<int> pids_, pidfds_, ranks_;
  std::map<std::pair<int, uint64_t>, std::pair<uint8_t*, size_t>> peerAllocs_;
  uint64_t seq_ = 0;
  uint64_t lastSmall_ = 0;  // the last round that was a small all-reduce
  int spinUs_;
  int wakeSpinUs_;
  uint64_t wokeRound_ = 0;     // the last round in which ring() woke a sleeping peer
  uint64_t wakeSpinFrom_ = 0;  // no long spin before this round (the last one missed its peer)
  static constexpr uint64_t kWakeSpinPause = 1024;
  // Waits in a row that found the peer last waiting on this rank's CPU, and when this rank last moved
  // off such a CPU (at most every kMoveEveryMs, after kColocatedWaits such waits).
  int colocated_ = 0;
  Clock::time_point lastMove_{};
  static constexpr int kColocatedWaits = 8;
  static constexpr int kMoveEveryMs = 10;
};

// Staging bytes per member per group (DTRAIN_SHM_STAGING_BYTES overrides); rounds are this big.
size_t stagingBytes();
constexpr size_t kSmallBytes = 32 * 1024;

}  // namespace dtrain
