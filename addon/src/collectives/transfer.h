// What every algorithm over channels shares: a view of the members (one channel per other member) and
// the loop that drives a set of sends and receives to completion, polling sockets and sleeping on bells.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "collectives/channel.h"
#include "collectives/wait.h"

namespace dtrain {

// A member list with one channel per other member (nullptr for self), ranks in group order.
struct RingView {
  std::vector<Channel*> channels;
  std::vector<int> globalRanks;
  int me;
  std::string groupName;
  int size() const { return int(channels.size()); }
};

struct Xfer {
  Channel* ch;
  bool send;
  uint8_t* p;
  size_t len;
  size_t done = 0;
};

// Drives every transfer to completion; onRecv(i, doneBytes) reports receive progress for pipelining.
// Throws CollectiveError naming the ranks still owed bytes on timeout or dist.close().
void runTransfers(std::vector<Xfer>& xs, const Deadline& d, const std::function<void(size_t, size_t)>& onRecv = {});

}  // namespace dtrain
