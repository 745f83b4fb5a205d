// Reduce inside the host over shared memory, all-reduce between host leaders over the TCP ring, broadcast
// back inside the host.
#include "collectives/hierarchy.h"

namespace dtrain {

void hierarchicalAllReduce(Hierarchy& h, void* buf, size_t count, DType t, RedOp op, const Deadline& d) {
  if (h.team) h.team->allReduce(buf, count, t, op, 1, d);
  if (h.isLeader) ringAllReduce(h.leaders, buf, count, t, op, d);
  if (h.team) h.team->broadcast(buf, count, t, 0, d);
}

}  // namespace dtrain
