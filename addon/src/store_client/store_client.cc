#include "store_client/store_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace dtrain::store {
namespace {

using Clock = std::chrono::steady_clock;

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : int(left);
}

}  // namespace

StoreClient::StoreClient(const std::string& address, int connectTimeoutMs) : address_(address) {
  std::string path = address.rfind("unix:", 0) == 0 ? address.substr(5) : address;
  sockaddr_un sa{};
  if (path.empty() || path.size() >= sizeof(sa.sun_path))
    throw StoreError("DTRAIN_STORE must be unix:/path/to/socket (got '" + address + "')");
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  auto deadline = Clock::now() + std::chrono::milliseconds(connectTimeoutMs);
  // The proxy may still be starting: retry a missing or refusing socket until the deadline.
  for (;;) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw StoreError(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) return;
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    if ((err != ENOENT && err != ECONNREFUSED) || Clock::now() >= deadline)
      throw StoreError("cannot connect to the store proxy at " + path + ": " + std::strerror(err));
    ::usleep(20000);
  }
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreClient::writeAll(const std::string& bytes, int timeoutMs) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, msLeft(deadline)) == 0) throw StoreError("timed out writing to the store proxy");
      continue;
    }
    throw StoreError(std::string("store proxy connection lost: ") + std::strerror(errno));
  }
}

Message StoreClient::call(uint8_t op, std::vector<std::string> args, int replyTimeoutMs) {
  Message req;
  req.code = op;
  req.id = nextId_++;
  req.args = std::move(args);
  writeAll(encodeFrame(req), replyTimeoutMs);
  auto deadline = Clock::now() + std::chrono::milliseconds(replyTimeoutMs);
  std::vector<uint8_t> body;
  std::string error;
  for (;;) {
    int got = reader_.next(body, error);
    if (got < 0) throw StoreError("store proxy sent a bad frame: " + error);
    if (got > 0) {
      Message resp;
      if (!parseBody(body.data(), body.size(), resp, error)) throw StoreError("store proxy sent a bad reply: " + error);
      if (resp.id != req.id) continue;  // a late reply to an earlier request that timed out here
      return resp;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) throw StoreError("the store proxy did not answer within " + std::to_string(replyTimeoutMs) + " ms");
    uint8_t chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) throw StoreError("the store proxy closed the connection (is the agent gone?)");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw StoreError(std::string("store proxy connection lost: ") + std::strerror(errno));
    }
    reader_.feed(chunk, size_t(n));
  }
}

namespace {
// Replies to blocking ops arrive after the server-side timeout; leave room for it to answer first.
constexpr int kReplySlackMs = 5000;
constexpr int kQuickMs = 30000;

void expectOk(const Message& r, const char* what, const std::string& key) {
  if (r.code == kOk) return;
  throw StoreError(std::string("store ") + what + " '" + key + "' failed: " + statusName(r.code));
}
}  // namespace

void StoreClient::set(const std::string& key, const std::string& value) {
  expectOk(call(kSet, {key, value}, kQuickMs), "SET", key);
}

std::string StoreClient::get(const std::string& key, int timeoutMs) {
  Message r = call(kGet, {key, std::to_string(timeoutMs)}, timeoutMs + kReplySlackMs);
  if (r.code == kTimeout || r.code == kNotFound)
    throw StoreError("timed out after " + std::to_string(timeoutMs) + " ms waiting for store key '" + key + "'");
  expectOk(r, "GET", key);
  if (r.args.size() != 1)
    throw StoreError("store GET '" + key + "' returned " + std::to_string(r.args.size()) + " values");
  return r.args[0];
}

int64_t StoreClient::add(const std::string& key, int64_t delta) {
  Message r = call(kAdd, {key, std::to_string(delta)}, kQuickMs);
  expectOk(r, "ADD", key);
  if (r.args.size() != 1) throw StoreError("store ADD '" + key + "' returned no value");
  return std::stoll(r.args[0]);
}

void StoreClient::barrier(const std::string& name, int count, int timeoutMs) {
  Message r = call(kBarrier, {name, std::to_string(count), std::to_string(timeoutMs)}, timeoutMs + kReplySlackMs);
  if (r.code == kTimeout)
    throw StoreError("timed out after " + std::to_string(timeoutMs) + " ms in store barrier '" + name + "'");
  expectOk(r, "BARRIER", name);
}

std::string StoreClient::jobKey() {
  Message r = call(kJobKey, {}, kQuickMs);
  expectOk(r, "JOB_KEY", "");
  if (r.args.size() != 1 || r.args[0].size() < 16) throw StoreError("store proxy returned no usable job key");
  return r.args[0];
}

}  // namespace dtrain::store
