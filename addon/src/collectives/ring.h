// The ring algorithms, written once over the Channel interface (any transport): reduce-scatter and
// all-gather with pipelined chunks (all-reduce is the two in turn), and a barrier.
#pragma once
#include <string>
#include <vector>

#include "collectives/dtype.h"
#include "collectives/transfer.h"

namespace dtrain {

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
void ringBarrier(const RingView& v, const Deadline& d);

}  // namespace dtrain
