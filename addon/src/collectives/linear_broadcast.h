// Broadcast over channels: the root sends the whole buffer to every other member at once.
#pragma once
#include <cstddef>

#include "collectives/transfer.h"

namespace dtrain {

void linearBroadcast(const RingView& v, void* buf, size_t bytes, int root, const Deadline& d);

}  // namespace dtrain
