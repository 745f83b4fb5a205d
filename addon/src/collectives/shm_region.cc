#include "collectives/shm_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "collectives/errors.h"

namespace dtrain {

uint64_t randomU64() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof(v), 0) != sizeof(v)) v = uint64_t(::getpid()) * 0x9e3779b97f4a7c15ull ^ uint64_t(::time(nullptr));
  return v;
}

ShmRegion createRegion(size_t size, const char* purpose) {
  ShmRegion r;
  size_t page = size_t(::sysconf(_SC_PAGESIZE));
  r.size = (size + page - 1) / page * page;
  if (r.size == 0) r.size = page;
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
