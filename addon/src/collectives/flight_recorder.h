// The flight recorder: per group, the last 256 collectives (seq, op, dtype, count, bytes, state, times) in
// a file the agent created (DTRAIN_FLIGHT_RECORDER) and this process maps MAP_SHARED, so the agent reads
// it while the rank hangs and after it died or was killed. Without the variable (a worker run by hand)
// the same layout lives in anonymous memory. The binary layout (version 1) is documented once, in
// src/runtime/flight-recorder.ts (the reader); the structs below must match it (static_asserts).
//
// Writing costs a few stores and one uncontended compare-and-swap per state change: an entry's version
// is odd while a writer holds it (the JS thread claims and enqueues, the progress thread starts and ends;
// they meet on one entry only when 256 ops are queued), and readers skip odd or changing entries.
// Times are CLOCK_MONOTONIC_COARSE (a few ms resolution, ~15 ns to read where CLOCK_MONOTONIC costs 10x).
#pragma once
#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dtrain {

constexpr uint32_t kFlightMagic = 0x52465444;  // "DTFR"
constexpr uint32_t kFlightVersion = 1;
constexpr uint32_t kFlightGroups = 64;
constexpr uint32_t kFlightEntries = 256;

enum class FlightState : uint8_t { empty = 0, enqueued = 1, started = 2, completed = 3 };
constexpr uint8_t kFlightFailed = 1;

struct FlightFileHeader {
  std::atomic<uint32_t> magic;  // written last
  uint32_t version, headerBytes, groupBytes, groupCapacity, entriesPerGroup, entryBytes;
  std::atomic<uint32_t> groupsClaimed;
  int32_t rank, pid;
  uint64_t monotonicAnchorNs, realtimeAnchorNs, reserved;
};
static_assert(sizeof(FlightFileHeader) == 64, "flight recorder header layout");

struct FlightEntry {
  std::atomic<uint32_t> version;  // odd while a writer holds the entry
  uint8_t state, op, dtype, flags;
  int32_t root;
  uint32_t pad;
  uint64_t seq, count, bytes, enqueuedNs, startedNs, endedNs;
};
static_assert(sizeof(FlightEntry) == 64, "flight recorder entry layout");

struct FlightGroupHeader {
  char name[64];
  char members[256];  // global ranks as "0-3,8"
  uint8_t membersTruncated, pad[3];
  uint32_t size, groupRank, pad2;
  std::atomic<uint64_t> lastSeq;
  uint8_t reserved[40];
};
static_assert(sizeof(FlightGroupHeader) == 384, "flight recorder group layout");
static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free,
              "the mapped counters must be plain words");

inline uint64_t flightNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// One group's ring. A default-constructed ring (no slot left, or no recorder) records nothing.
class FlightRing {
 public:
  FlightRing() = default;
  FlightRing(FlightGroupHeader* header, FlightEntry* entries) : header_(header), entries_(entries) {}

  // On the JS thread (the only one that claims): the op's seq, recorded enqueued, or started when it runs now.
  uint64_t begin(uint8_t op, uint8_t dtype, uint64_t count, uint64_t bytes, int32_t root, bool started) {
    uint64_t seq = ++nextSeq_;
    if (!header_) return seq;
    header_->lastSeq.store(seq, std::memory_order_relaxed);
    FlightEntry& e = entry(seq);
    uint32_t v = lock(e);
    uint64_t now = flightNowNs();
    e.state = uint8_t(started ? FlightState::started : FlightState::enqueued);
    e.op = op;
    e.dtype = dtype;
    e.flags = 0;
    e.root = root;
    e.seq = seq;
    e.count = count;
    e.bytes = bytes;
    e.enqueuedNs = now;
    e.startedNs = started ? now : 0;
    e.endedNs = 0;
    e.version.store(v + 2, std::memory_order_release);
    return seq;
  }
  // On the thread that runs the op: it starts now (a queued op).
  void start(uint64_t seq) { update(seq, FlightState::started, false); }
  // It ended: completed, or failed where it stood (a timeout leaves it started, flagged failed).
  void end(uint64_t seq, bool failed) { update(seq, FlightState::completed, failed); }

 private:
  FlightEntry& entry(uint64_t seq) { return entries_[(seq - 1) % kFlightEntries]; }
  // Takes the entry (even → odd); returns the even version it had.
  static uint32_t lock(FlightEntry& e) {
    uint32_t v = e.version.load(std::memory_order_relaxed);
    for (;;) {
      if ((v & 1) == 0 &&
          e.version.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed))
        return v;
      if (v & 1) v = e.version.load(std::memory_order_relaxed);
    }
  }
  void update(uint64_t seq, FlightState to, bool failed) {
    if (!header_) return;
    FlightEntry& e = entry(seq);
    uint32_t v = lock(e);
    if (e.seq == seq) {  // else a newer op took the slot (the ring wrapped while this one was queued)
      uint64_t now = flightNowNs();
      if (failed)
        e.flags |= kFlightFailed;
      else
        e.state = uint8_t(to);
      if (to == FlightState::started) e.startedNs = now;
      if (to == FlightState::completed) e.endedNs = now;
    }
    e.version.store(v + 2, std::memory_order_release);
  }

  FlightGroupHeader* header_ = nullptr;
  FlightEntry* entries_ = nullptr;
  uint64_t nextSeq_ = 0;  // the JS thread's only
};

// The process's recorder: the mapped file (or anonymous memory) and its group slots.
class FlightRecorder {
 public:
  // Maps `path` (created 0600 when missing, sized here), or anonymous memory when `path` is empty.
  // Throws CollectiveError naming the file when it cannot be used.
  FlightRecorder(const std::string& path, int rank);
  ~FlightRecorder();
  FlightRecorder(const FlightRecorder&) = delete;
  FlightRecorder& operator=(const FlightRecorder&) = delete;

  // Claims the next group slot; past kFlightGroups the group is counted and not recorded.
  FlightRing addGroup(const std::string& name, const std::vector<int>& globalRanks, int groupRank);
  static size_t fileBytes();

 private:
  uint8_t* base_ = nullptr;
  FlightFileHeader* header() { return reinterpret_cast<FlightFileHeader*>(base_); }
};

// "0-3,8,10": the members as the reader parses them.
std::string flightRankList(const std::vector<int>& ranks);

}  // namespace dtrain
