// Rails: inside each host, reduce-scatter over shared memory so that the member with team index j holds the
// host's partial sums of the blocks of every host's member j; then the members with index j (one per host)
// reduce-scatter those over TCP, each ending with its own block summed everywhere. Every rank sends only
// across hosts, and the host's ranks share the network work.
#include <cstring>

#include "collectives/hierarchy.h"

namespace dtrain {

void railReduceScatter(Hierarchy& h, const void* in, void* out, size_t n, DType t, RedOp op, const Deadline& d) {
  size_t es = dtypeSize(t), ts = h.hostMembers[size_t(h.myHost())].size(), hosts = h.hostMembers.size();
  const uint8_t* src = static_cast<const uint8_t*>(in);
  uint8_t* byMember = h.scratch.get(0, size_t(h.size) * n * es);  // block (host h, member j) at (j * hosts + h)
  for (size_t j = 0; j < ts; ++j)
    for (size_t hi = 0; hi < hosts; ++hi)
      std::memcpy(byMember + (j * hosts + hi) * n * es, src + size_t(h.hostMembers[hi][j]) * n * es, n * es);
  uint8_t* mine = h.scratch.get(1, hosts * n * es);
  if (h.team)
    h.team->reduceScatter(byMember, mine, hosts * n, t, op, 1, d);
  else
    std::memcpy(mine, byMember, hosts * n * es);
  ringReduceScatter(h.rail, mine, out, n, t, op, d);
  h.scratch.trim();
}

}  // namespace dtrain
