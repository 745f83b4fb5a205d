// TCP between ranks on different hosts: one listening socket per process, connections made per group
// (the higher group rank connects to the lower), each authenticated both ways by HMAC-SHA-256 over fresh
// nonces with the job key (challenge-response: the key itself never crosses the wire).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "collectives/wait.h"

namespace dtrain {

class TcpListener {
 public:
  // Listens on `bindAddr` (from choosePeerAddress), on a port the kernel picks.
  TcpListener(std::string jobKey, const std::string& bindAddr);
  ~TcpListener();
  // "addr:port" for the store: where peers reach this listener.
  std::string endpoint() const;
  // Connects to `endpoint` and authenticates as `fromRank` for group `groupId`; returns the socket.
  int connectPeer(const std::string& endpoint, uint64_t groupId, int fromRank, int toRank, const Deadline& d);
  // Accepts and authenticates until a connection from `fromRank` for `groupId` arrives (connections for
  // groups this process has not reached yet are kept for later). Handshakes run side by side; one that is
  // not done within a short pre-auth deadline is dropped.
  int acceptPeer(uint64_t groupId, int fromRank, int myRank, const Deadline& d);
  // How many connection attempts failed authentication (for tests and logs).
  int refusedCount() const { return refused_; }

 private:
  struct Pending;
  // Reads what a pending connection sent and answers it; false when it is done with (authenticated: its fd
  // moved to early_ and set to -1; refused: fd still set, for the caller to close).
  bool advance(Pending& p, int myRank);
  int fd_ = -1;
  int port_ = 0;
  std::string key_;
  std::string addr_;
  std::vector<Pending> pending_;
  std::map<std::pair<uint64_t, int>, int> early_;
  int refused_ = 0;
};

uint64_t hashGroupId(const std::string& name);
// The IPv4 address to listen on and publish: that of the first interface DTRAIN_SOCKET_IFNAME names (NCCL's
// grammar: prefixes, `=` exact names, `^` exclusions) when set, else that of the interface routing to
// MASTER_ADDR (loopback when MASTER_ADDR is loopback or unset). Throws one clear line when there is none.
std::string choosePeerAddress(const std::string& ifname, const std::string& masterAddr);

}  // namespace dtrain
