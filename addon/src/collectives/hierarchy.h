// The hierarchical algorithms of a group that spans hosts, one per file: inside a host over the shared-
// memory team, between hosts over TCP (the host leaders' ring, or the rails), then back inside the host.
// The group checks the op headers, scales averages and records statistics around them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "collectives/dtype.h"
#include "collectives/ring.h"
#include "collectives/team.h"
#include "collectives/transfer.h"

namespace dtrain {

// Staging for the hierarchical ops, kept between ops: fresh pages for every op cost more than the op's own
// copies (page faults and zeroing).
class Scratch {
 public:
  uint8_t* get(int which, size_t bytes);
  // ...but not without bound: one huge op must not pin its size for the group's lifetime.
  void trim();

 private:
  std::vector<uint8_t> buffers_[2];
};

struct Hierarchy {
  int me = 0;                                 // group rank
  int size = 0;                               // group size
  Team* team = nullptr;                       // this host's members, or nullptr when this member is alone
  bool isLeader = false;                      // the first member on its host
  RingView leaders;                           // the host leaders, in host order (me is -1 elsewhere)
  RingView rail;                              // uniform hosts: the members with this team index, one per host
  std::vector<int> leaderRanks;               // by host: the group rank of its leader (ascending)
  std::vector<std::vector<int>> hostMembers;  // by host: its group ranks, ascending
  std::vector<int> hostOf;                    // by group rank: its host
  bool uniformHosts = false;                  // every host holds as many members (the rails need it)
  bool contiguousHosts = false;               // and each host's members are consecutive group ranks, hosts in order
  Scratch scratch;
  int myHost() const { return hostOf[size_t(me)]; }
  // Its place in its host's team.
  int indexOnHost(int groupRank) const;
};

// `op` is the reduction inside and between hosts (sum for avg: the caller scales once at the end).
void hierarchicalAllReduce(Hierarchy& h, void* buf, size_t count, DType t, RedOp op, const Deadline& d);
// Needs uniform hosts.
void railReduceScatter(Hierarchy& h, const void* in, void* out, size_t n, DType t, RedOp op, const Deadline& d);
void hierarchicalAllGather(Hierarchy& h, const void* in, void* out, size_t n, DType t, const Deadline& d);
void hierarchicalBroadcast(Hierarchy& h, void* buf, size_t count, DType t, int root, const Deadline& d);

}  // namespace dtrain
