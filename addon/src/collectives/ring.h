// Collectives written once over the Channel interface (any transport): ring reduce-scatter / all-gather
// with pipelined chunks, linear broadcast, ring barrier, and an all-to-all header check that lets every
// rank name the same mismatch.
#pragma once
#include <string>
#include <vector>

#include "collectives/channel.h"
#include "collectives/dtype.h"
#include "collectives/team.h"
#include "collectives/wait.h"

namespace dtrain {

struct OpHeader {
  uint32_t magic;
  uint32_t kind;  // OpKind, or kP2p
  uint8_t dtype, redop;
  uint16_t pad;
  int32_t root;  // broadcast root, or the p2p tag
  uint64_t count;
  uint64_t seq;  // per-group op number: catches ranks that skipped or reordered an op
};
constexpr uint32_t kHeaderMagic = 0x4454524e;  // "DTRN"
constexpr uint32_t kP2p = 100;

// A member list with one channel per other member (nullptr for self), ranks in group order.
struct RingView {
  std::vector<Channel*> channels;
  std::vector<int> globalRanks;
  int me;
  std::string groupName;
  int size() const { return int(channels.size()); }
};

void checkHeaders(const RingView& v, const OpHeader& mine, const Deadline& d);
void ringAllReduce(const RingView& v, void* buf, size_t count, DType t, RedOp op, const Deadline& d);
void ringReduceScatter(const RingView& v, const void* in, void* out, size_t n, DType t, RedOp op, const Deadline& d);
void ringAllGather(const RingView& v, const void* in, void* out, size_t n, DType t, const Deadline& d);
// Blocks of different sizes: ring position p's block is `blocks[p]` (offset and length in bytes, in `out`);
// this rank's own block must already be in place.
struct ByteBlock {
  size_t offset;
  size_t bytes;
};
void ringAllGatherBlocks(const RingView& v, void* out, const std::vector<ByteBlock>& blocks, const Deadline& d);
void linearBroadcast(const RingView& v, void* buf, size_t bytes, int root, const Deadline& d);
void ringBarrier(const RingView& v, const Deadline& d);

std::string describeHeader(const OpHeader& h);

}  // namespace dtrain
