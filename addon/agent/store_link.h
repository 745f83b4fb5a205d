// The agent's one authenticated connection to the controller's store (src/store/PROTOCOL.md): the
// challenge-response handshake with the job key, then every frame in an HMAC envelope. Requests are
// pipelined; each answer is matched to its request by id. The proxy forwards its workers' requests
// through the same connection.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "loop.h"
#include "store_client/frame.h"

namespace dtrain::agent {

using store::Message;

class StoreLink {
 public:
  // `lost` is true when the connection ended before the answer came (the Message is then empty).
  using Reply = std::function<void(const Message& res, bool lost)>;

  explicit StoreLink(Loop& loop) : loop_(loop) {}
  ~StoreLink();

  // Connects and authenticates within timeoutMs, blocking (nothing else runs before the agent has its
  // store). Returns false with one line in `error`.
  bool open(const std::string& host, int port, const std::string& jobKey, int timeoutMs, std::string& error);

  uint32_t send(uint8_t op, const std::vector<std::string>& args, Reply reply);
  // Asks the store to answer a blocked request now (status "cancelled"); its Reply still runs.
  void cancel(uint32_t id);
  bool isOpen() const { return fd_ >= 0; }
  void close();
  // Runs once when the connection ends by itself (store gone, protocol error).
  std::function<void(const std::string& why)> onLost;
  // Requests sent and not yet answered.
  size_t pending() const { return pending_.size(); }

 private:
  void onEvents(short revents);
  void fail(const std::string& why);
  void flush();

  Loop& loop_;
  int fd_ = -1;
  std::string sendKey_, recvKey_;
  uint64_t sendSeq_ = 0, recvSeq_ = 0;
  uint32_t nextId_ = 1;
  std::map<uint32_t, Reply> pending_;
  std::string out_;
  // A trusted body may be as large as the store allows, plus the envelope's sequence number and MAC.
  store::FrameReader reader_{store::kMaxBody + 8 + 32};
};

}  // namespace dtrain::agent
