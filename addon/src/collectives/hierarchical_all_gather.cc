// Gather each host's block over shared memory, ring the blocks between host leaders over TCP (one copy of
// each block crosses the network instead of one per rank), then share the whole result inside each host.
// Hosts may differ in size: each host's block is as long as its members' parts.
#include <cstring>

#include "collectives/hierarchy.h"

namespace dtrain {

void hierarchicalAllGather(Hierarchy& h, const void* in, void* out, size_t n, DType t, const Deadline& d) {
  size_t es = dtypeSize(t), part = n * es, hosts = h.hostMembers.size();
  uint8_t* o = static_cast<uint8_t*>(out);
  std::vector<ByteBlock> blocks(hosts);
  if (h.contiguousHosts) {
    // Host blocks already sit in group order: gather into this host's block of the output, in place.
    for (size_t li = 0; li < hosts; ++li)
      blocks[li] = {size_t(h.leaderRanks[li]) * part, h.hostMembers[li].size() * part};
    uint8_t* block = o + blocks[size_t(h.myHost())].offset;
    if (h.team)
      h.team->allGather(in, block, n, t, d);
    else
      std::memmove(block, in, part);
    if (h.isLeader) ringAllGatherBlocks(h.leaders, o, blocks, d);
  } else {
    // Host blocks one after another in a scratch buffer, then each member's part to its group position.
    for (size_t li = 0, at = 0; li < hosts; at += blocks[li].bytes, ++li)
      blocks[li] = {at, h.hostMembers[li].size() * part};
    uint8_t* all = h.scratch.get(1, size_t(h.size) * part);
    uint8_t* block = all + blocks[size_t(h.myHost())].offset;
    if (h.team)
      h.team->allGather(in, block, n, t, d);
    else
      std::memcpy(block, in, part);
    if (h.isLeader) {
      ringAllGatherBlocks(h.leaders, all, blocks, d);
      for (size_t li = 0; li < hosts; ++li)
        for (size_t j = 0; j < h.hostMembers[li].size(); ++j)
          std::memcpy(o + size_t(h.hostMembers[li][j]) * part, all + blocks[li].offset + j * part, part);
    }
    h.scratch.trim();
  }
  if (h.team) h.team->broadcast(out, n * size_t(h.size), t, 0, d);
}

}  // namespace dtrain
