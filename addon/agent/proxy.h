// The workers' store proxy (the native twin of src/store/proxy.ts): a Unix socket in a 0700 folder, each
// worker request forwarded over the agent's one authenticated connection with the attempt prefix
// `a<k>/` on its keys and its id remapped; JOB_KEY and WHOAMI answered here.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "loop.h"
#include "store_link.h"

namespace dtrain::agent {

class StoreProxy {
 public:
  StoreProxy(Loop& loop, StoreLink& upstream, std::string jobKey)
      : loop_(loop), up_(upstream), jobKey_(std::move(jobKey)) {}
  ~StoreProxy() { close(); }
  // Creates <dir>/store.sock (dir must exist, 0700). False with a line in `error`.
  bool listen(const std::string& dir, std::string& error);
  // New requests get attempt k's prefix; connections of earlier attempts are closed.
  void setAttempt(int attempt);
  const std::string& socketPath() const { return path_; }
  void close();

 private:
  struct Conn {
    int fd;
    int attempt;
    store::FrameReader reader;
    std::string out;
    std::map<uint32_t, uint32_t> inFlight;  // worker id -> upstream id
    bool closed = false;
  };
  void accept();
  void onConn(const std::shared_ptr<Conn>& c, short revents);
  void request(const std::shared_ptr<Conn>& c, const Message& req);
  void reply(const std::shared_ptr<Conn>& c, uint8_t status, uint32_t id, const std::vector<std::string>& args);
  void drop(const std::shared_ptr<Conn>& c);
  void flush(const std::shared_ptr<Conn>& c);

  Loop& loop_;
  StoreLink& up_;
  std::string jobKey_;
  std::string path_;
  int listenFd_ = -1;
  int attempt_ = 0;
  std::map<int, std::shared_ptr<Conn>> conns_;
};

}  // namespace dtrain::agent
