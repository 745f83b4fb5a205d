// A blocking client of the store protocol over the agent's Unix-socket proxy (DTRAIN_STORE=unix:/path).
// Used for rendezvous only (setup of groups), never on a collective's data path.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "store_client/frame.h"

namespace dtrain::store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StoreClient {
 public:
  // `address` is DTRAIN_STORE's value: `unix:/path/store.sock` (a bare path is accepted too).
  StoreClient(const std::string& address, int connectTimeoutMs);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::string& value);
  // Blocks until the key exists; throws StoreError naming the key on timeout.
  std::string get(const std::string& key, int timeoutMs);
  int64_t add(const std::string& key, int64_t delta);
  void barrier(const std::string& name, int count, int timeoutMs);
  // The 32-byte job key for peer authentication (only the agent's Unix proxy answers this).
  std::string jobKey();

 private:
  Message call(uint8_t op, std::vector<std::string> args, int replyTimeoutMs);
  void writeAll(const std::string& bytes, int timeoutMs);

  int fd_ = -1;
  uint32_t nextId_ = 1;
  std::string address_;
  FrameReader reader_;
};

}  // namespace dtrain::store
