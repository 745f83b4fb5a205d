#include "collectives/hierarchy.h"

#include <algorithm>

namespace dtrain {

uint8_t* Scratch::get(int which, size_t bytes) {
  std::vector<uint8_t>& v = buffers_[size_t(which)];
  if (v.size() < bytes) v.resize(bytes);
  return v.data();
}

void Scratch::trim() {
  constexpr size_t kKeep = size_t(64) << 20;
  for (auto& v : buffers_)
    if (v.size() > kKeep) std::vector<uint8_t>().swap(v);
}

int Hierarchy::indexOnHost(int groupRank) const {
  const std::vector<int>& m = hostMembers[size_t(hostOf[size_t(groupRank)])];
  return int(std::find(m.begin(), m.end(), groupRank) - m.begin());
}

}  // namespace dtrain
