// The root's host first (its leader gets the data over shared memory), then the host leaders over TCP
// from that leader, then every other host from its leader: one copy per host crosses the network.
#include "collectives/hierarchy.h"

#include "collectives/linear_broadcast.h"

namespace dtrain {

void hierarchicalBroadcast(Hierarchy& h, void* buf, size_t count, DType t, int root, const Deadline& d) {
  int rootHost = h.hostOf[size_t(root)];
  bool onRootHost = rootHost == h.myHost();
  if (onRootHost && h.team) h.team->broadcast(buf, count, t, h.indexOnHost(root), d);
  if (h.isLeader) linearBroadcast(h.leaders, buf, count * dtypeSize(t), rootHost, d);
  if (!onRootHost && h.team) h.team->broadcast(buf, count, t, 0, d);
}

}  // namespace dtrain
