#include "collectives/flight_recorder.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collectives/errors.h"

namespace dtrain {

namespace {

constexpr size_t kGroupBytes = sizeof(FlightGroupHeader) + kFlightEntries * sizeof(FlightEntry);

uint64_t clockNs(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

size_t FlightRecorder::fileBytes() { return sizeof(FlightFileHeader) + kFlightGroups * kGroupBytes; }

FlightRecorder::FlightRecorder(const std::string& path, int rank) {
  size_t bytes = fileBytes();
  void* p = MAP_FAILED;
  if (path.empty()) {
    p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  } else {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    auto fail = [&](const char* what) {
      std::string msg = std::string("dtrain: cannot use the flight recorder ") + path +
                        " (DTRAIN_FLIGHT_RECORDER): " + what + ": " + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      throw CollectiveError(msg);
    };
    if (fd < 0) fail("open");
    // Emptied first: a file left from an earlier process must not show its ops as this one's.
    if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, off_t(bytes)) != 0) fail("ftruncate");
    p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) fail("mmap");
    ::close(fd);
  }
  if (p == MAP_FAILED) throw CollectiveError(std::string("dtrain: flight recorder: mmap: ") + std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
  FlightFileHeader* h = header();
  h->version = kFlightVersion;
  h->headerBytes = sizeof(FlightFileHeader);
  h->groupBytes = uint32_t(kGroupBytes);
  h->groupCapacity = kFlightGroups;
  h->entriesPerGroup = kFlightEntries;
  h->entryBytes = sizeof(FlightEntry);
  h->rank = rank;
  h->pid = int32_t(::getpid());
  h->monotonicAnchorNs = clockNs(CLOCK_MONOTONIC_COARSE);
  h->realtimeAnchorNs = clockNs(CLOCK_REALTIME_COARSE);
  h->magic.store(kFlightMagic, std::memory_order_release);
}

FlightRecorder::~FlightRecorder() {
  if (base_) ::munmap(base_, fileBytes());
}

FlightRing FlightRecorder::addGroup(const std::string& name, const std::vector<int>& globalRanks, int groupRank) {
  uint32_t slot = header()->groupsClaimed.fetch_add(1, std::memory_order_relaxed);
  if (slot >= kFlightGroups) return FlightRing();
  uint8_t* at = base_ + sizeof(FlightFileHeader) + size_t(slot) * kGroupBytes;
  auto* g = reinterpret_cast<FlightGroupHeader*>(at);
  std::strncpy(g->name, name.c_str(), sizeof(g->name) - 1);
  std::string members = flightRankList(globalRanks);
  if (members.size() < sizeof(g->members))
    std::memcpy(g->members, members.data(), members.size());
  else
    g->membersTruncated = 1;
  g->size = uint32_t(globalRanks.size());
  g->groupRank = uint32_t(groupRank);
  return FlightRing(g, reinterpret_cast<FlightEntry*>(at + sizeof(FlightGroupHeader)));
}

std::string flightRankList(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(ranks[i]);
    if (j > i) s += '-' + std::to_string(ranks[j]);
    i = j + 1;
  }
  return s;
}

}  // namespace dtrain
