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
  explicit TcpListener(std::string jobKey);
  ~TcpListener();
  // "addr1,addr2,...:port" for the store: every non-loopback IPv4 address of this host, then loopback.
  std::string endpoint() const;
  // Connects to `endpoint` and authenticates as `fromRank` for group `groupId`; returns the socket.
  int connectPeer(const std::string& endpoint, uint64_t groupId, int fromRank, int toRank, const Deadline& d);
  // Accepts and authenticates until a connection from `fromRank` for `groupId` arrives (connections for
  // groups this process has not reached yet are kept for later).
  int acceptPeer(uint64_t groupId, int fromRank, int myRank, const Deadline& d);
  // How many connection attempts failed authentication (for tests and logs).
  int refusedCount() const { return refused_; }

 private:
  bool handshakeAsServer(int fd, int myRank, uint64_t& groupId, int& fromRank);
  int fd_ = -1;
  int port_ = 0;
  std::string key_;
  std::map<std::pair<uint64_t, int>, int> early_;
  int refused_ = 0;
};

uint64_t hashGroupId(const std::string& name);

}  // namespace dtrain
