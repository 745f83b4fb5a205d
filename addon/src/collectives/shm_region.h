// Shared memory private to the job: anonymous memfds (no name in /dev/shm, so nothing to unlink and
// nothing left behind by a crash), space reserved up front with fallocate so a full tmpfs is a clear
// error instead of a SIGBUS, shared with same-host peers by (pid, fd) through /proc/<pid>/fd.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace dtrain {

struct ShmRegion {
  uint8_t* base = nullptr;
  size_t size = 0;
  int fd = -1;
  uint64_t uid = 0;  // random: tells a reused fd number apart from the region a peer mapped before
};

// Throws CollectiveError("cannot reserve ... shared memory ...") when the space is not there.
ShmRegion createRegion(size_t size, const char* purpose);
void destroyRegion(ShmRegion& r);
// Maps a peer's region read-write; throws naming the peer when it cannot be opened.
uint8_t* mapPeerRegion(int pid, int fd, size_t size, int peerRank);
void unmapPeerRegion(uint8_t* base, size_t size);
uint64_t randomU64();

// Regions handed to JavaScript by dist.alloc, found again by address when a buffer reaches an op.
struct AllocatedRef {
  int fd = -1;
  uint64_t uid = 0;
  size_t offset = 0;  // of the buffer inside the region
  size_t regionSize = 0;
};
void registerAllocation(const ShmRegion& r);
void unregisterAllocation(uint8_t* base);
// True when [p, p+len) lies inside one allocation.
bool findAllocation(const void* p, size_t len, AllocatedRef& out);

}  // namespace dtrain
