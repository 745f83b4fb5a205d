// The TCP Channel: one connected, authenticated socket to a peer on another host (tcp_listener.h makes
// it), used non-blocking so a ring step can send and receive at once.
#pragma once
#include <memory>

#include "collectives/channel.h"

namespace dtrain {

// Takes ownership of `fd`.
std::unique_ptr<Channel> makeTcpChannel(int fd, int peerRank);

}  // namespace dtrain
