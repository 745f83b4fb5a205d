#include "collectives/shm_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "collectives/errors.h"

namespace dtrain {

uint64_t randomU64() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof(v), 0) != sizeof(v))
    v = uint64_t(::getpid()) * 0x9e3779b97f4a7c15ull ^ uint64_t(::time(nullptr));
  return v;
}

namespace {

uint64_t readNumber(const char* path) {
  std::ifstream f(path);
  std::string word;
  if (!(f >> word) || word == "max") return UINT64_MAX;
  try {
    return std::stoull(word);
  } catch (...) {
    return UINT64_MAX;
  }
}

// What this process may still fill: MemAvailable, capped by its cgroup (v2) limit. A memfd draws on
// neither /dev/shm's size nor any other limit, so posix_fallocate of more than this would not fail: it
// would push the machine into the OOM killer instead.
uint64_t availableMemoryBytes() {
  uint64_t avail = UINT64_MAX;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      avail = kib * 1024;
      break;
    }
  }
  // This process's memory cgroup: "0::<path>" (v2: memory.max, memory.current) or "N:memory:<path>" (v1).
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    uint64_t max = UINT64_MAX, current = UINT64_MAX;
    if (controllers.empty()) {
      max = readNumber(("/sys/fs/cgroup" + path + "/memory.max").c_str());
      current = readNumber(("/sys/fs/cgroup" + path + "/memory.current").c_str());
    } else if (controllers == "memory") {
      max = readNumber(("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes").c_str());
      current = readNumber(("/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes").c_str());
    }
    // v1 reports "no limit" as a huge page-rounded number, which the min leaves alone.
    if (max != UINT64_MAX && current != UINT64_MAX) avail = std::min(avail, max > current ? max - current : 0);
  }
  return avail;
}

std::string mib(uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

}  // namespace

ShmRegion createRegion(size_t size, const char* purpose) {
  ShmRegion r;
  size_t page = size_t(::sysconf(_SC_PAGESIZE));
  r.size = (size + page - 1) / page * page;
  if (r.size == 0) r.size = page;
  uint64_t avail = availableMemoryBytes();
  if (r.size > avail)
    throw CollectiveError("cannot reserve " + mib(r.size) + " of shared memory for " + purpose + ": only " +
                          mib(avail) +
                          " of memory is available (MemAvailable, or the cgroup's memory.max); lower the size");
  r.fd = ::memfd_create("dtrain-shm", MFD_CLOEXEC);
  if (r.fd < 0) throw CollectiveError(std::string("memfd_create failed: ") + std::strerror(errno));
  int err = ::posix_fallocate(r.fd, 0, off_t(r.size));
  if (err != 0) {
    ::close(r.fd);
    throw CollectiveError("cannot reserve " + std::to_string(r.size) + " bytes of shared memory for " + purpose + ": " +
                          std::strerror(err) + " (shared memory is full or limited; free some or lower the size)");
  }
  void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (p == MAP_FAILED) {
    err = errno;
    ::close(r.fd);
    throw CollectiveError(std::string("mmap of shared memory failed: ") + std::strerror(err));
  }
  r.base = static_cast<uint8_t*>(p);
  r.uid = randomU64();
  return r;
}

void destroyRegion(ShmRegion& r) {
  if (r.base) ::munmap(r.base, r.size);
  if (r.fd >= 0) ::close(r.fd);
  r.base = nullptr;
  r.fd = -1;
}

uint8_t* mapPeerRegion(int pid, int fd, size_t size, int peerRank) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  int local = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (local < 0)
    throw CollectiveError("cannot open rank " + std::to_string(peerRank) + "'s shared memory (" + path +
                          "): " + std::strerror(errno));
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, local, 0);
  int err = errno;
  ::close(local);  // the mapping keeps the memory; no descriptor or name is left to clean up
  if (p == MAP_FAILED)
    throw CollectiveError("cannot map rank " + std::to_string(peerRank) + "'s shared memory: " + std::strerror(err));
  return static_cast<uint8_t*>(p);
}

void unmapPeerRegion(uint8_t* base, size_t size) {
  if (base) ::munmap(base, size);
}

namespace {
std::mutex allocMutex;
std::map<uintptr_t, ShmRegion> allocations;  // by base address
}  // namespace

void registerAllocation(const ShmRegion& r) {
  std::lock_guard<std::mutex> lock(allocMutex);
  allocations[uintptr_t(r.base)] = r;
}

void unregisterAllocation(uint8_t* base) {
  std::lock_guard<std::mutex> lock(allocMutex);
  allocations.erase(uintptr_t(base));
}

bool findAllocation(const void* p, size_t len, AllocatedRef& out) {
  std::lock_guard<std::mutex> lock(allocMutex);
  uintptr_t a = uintptr_t(p);
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return false;
  --it;
  const ShmRegion& r = it->second;
  if (a < uintptr_t(r.base) || a + len > uintptr_t(r.base) + r.size) return false;
  out = {r.fd, r.uid, size_t(a - uintptr_t(r.base)), r.size};
  return true;
}

}  // namespace dtrain
