// The shared-memory Channel: a byte ring per direction inside the members' team segments (team.h lays
// them out). The sender owns the ring it writes; each side rings its own bell when it moves bytes.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "collectives/channel.h"
#include "collectives/wait.h"

namespace dtrain {

constexpr size_t kShmRingCap = 256 * 1024;

struct ShmRingHdr {
  alignas(64) std::atomic<uint64_t> head;  // bytes written by the owner (sender)
  alignas(64) std::atomic<uint64_t> tail;  // bytes consumed by the receiver
};
// Bytes one ring takes in a segment: its header, then its data.
constexpr size_t kShmRingStride = sizeof(ShmRingHdr) + kShmRingCap;

// `out` is the ring this member writes, `in` the one the peer writes; `peerGone` says why the peer can no
// longer answer, or "".
std::unique_ptr<Channel> makeShmChannel(ShmRingHdr* out, Bell* myBell, ShmRingHdr* in, Bell* peerBell,
                                        std::function<std::string()> peerGone, int peerRank);

}  // namespace dtrain
