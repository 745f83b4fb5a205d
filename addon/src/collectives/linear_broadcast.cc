#include "collectives/linear_broadcast.h"

namespace dtrain {

void linearBroadcast(const RingView& v, void* buf, size_t bytes, int root, const Deadline& d) {
  std::vector<Xfer> xs;
  if (v.me == root) {
    for (int i = 0; i < v.size(); ++i)
      if (i != root) xs.push_back({v.channels[size_t(i)], true, static_cast<uint8_t*>(buf), bytes});
  } else {
    xs.push_back({v.channels[size_t(root)], false, static_cast<uint8_t*>(buf), bytes});
  }
  runTransfers(xs, d);
}

}  // namespace dtrain
