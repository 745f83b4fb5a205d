// TCP between ranks on different hosts: one listening socket per process, connections made per group
// (the higher group rank connects to the lower), each authenticated both ways by HMAC-SHA-256 over fresh
// nonces with the job key (challenge-response: the key itself never crosses the wire).
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "collectives/wait.h"

namespace dtrain {

class TcpListener {
 public:
  // Listens on `bindAddr` (from choosePeerAddress), on a port the kernel picks, for peers dialling `myRank`;
  // a thread of its own accepts and authenticates.
  TcpListener(std::string jobKey, const std::string& bindAddr, int myRank);
  ~TcpListener();
  // "addr:port" for the store: where peers reach this listener.
  std::string endpoint() const;
  // Connects to `endpoint` and authenticates as `fromRank` for group `groupId`; returns the socket.
  int connectPeer(const std::string& endpoint, uint64_t groupId, int fromRank, int toRank, const Deadline& d);
  // Waits until a connection from `fromRank` for `groupId` has been authenticated (connections for groups
  // this process has not reached yet are kept for later). Handshakes run side by side on the listener's
  // thread; one that is not done within a short pre-auth deadline is dropped.
  int acceptPeer(uint64_t groupId, int fromRank, const Deadline& d);
  // How many connection attempts failed authentication (for tests and logs).
  int refusedCount() const { return refused_; }

 private:
  struct Pending;
  enum class Step { waiting, authenticated, refused };
  void serve();
  Step advance(Pending& p);  // reads what the connection sent and answers it
  void settle(const Pending& p);
  int fd_ = -1;
  int port_ = 0;
  std::string key_;
  std::string addr_;
  int myRank_;
  int wake_[2] = {-1, -1};        // written to stop the thread
  std::vector<Pending> pending_;  // the thread's own
  std::mutex mutex_;              // guards early_
  std::condition_variable arrived_;
  std::map<std::pair<uint64_t, int>, int> early_;
  std::atomic<int> refused_{0};
  std::thread thread_;
};

uint64_t hashGroupId(const std::string& name);
// The IPv4 address to listen on and publish: that of the first interface DTRAIN_SOCKET_IFNAME names (NCCL's
// grammar: prefixes, `=` exact names, `^` exclusions) when set, else that of the interface routing to
// MASTER_ADDR (loopback when MASTER_ADDR is loopback or unset). Throws one clear line when there is none.
std::string choosePeerAddress(const std::string& ifname, const std::string& masterAddr);

}  // namespace dtrain
