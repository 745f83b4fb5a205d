#include "proxy.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace dtrain::agent {

namespace {
constexpr size_t kMaxKey = 4096;
// While this much of a worker's answers wait unsent, its requests are not read (it blocks in write()
// instead of this agent buffering without bound).
constexpr size_t kHighOut = 1u << 20;

// Which arguments of a forwarded op are keys (empty set: forwarded, no keys; false: not forwarded).
bool keyArgs(uint8_t op, size_t argc, std::vector<size_t>& out) {
  out.clear();
  switch (op) {
    case store::kSet:
    case store::kGet:
    case store::kAdd:
    case store::kCas:
    case store::kDelete:
    case store::kBarrier:
      if (argc > 0) out.push_back(0);
      return true;
    case store::kWait:
      for (size_t i = 1; i < argc; i++) out.push_back(i);
      return true;
    case store::kCheck:
      for (size_t i = 0; i < argc; i++) out.push_back(i);
      return true;
    case store::kPing:
      return true;
    default:
      return false;
  }
}

bool parseUint32(const std::string& s, uint32_t& v) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + uint64_t(c - '0');
  }
  if (n > 0xffffffffu) return false;
  v = uint32_t(n);
  return true;
}
}  // namespace

bool StoreProxy::listen(const std::string& dir, std::string& error) {
  path_ = dir + "/store.sock";
  sockaddr_un addr{};
  if (path_.size() >= sizeof addr.sun_path) {
    error = "store proxy: socket path " + path_ + " is longer than " + std::to_string(sizeof addr.sun_path - 1) +
            " bytes; use a shorter folder";
    return false;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  listenFd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listenFd_ < 0 || bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listenFd_, 128) < 0) {
    error = "store proxy: cannot listen on " + path_ + ": " + strerror(errno);
    return false;
  }
  chmod(path_.c_str(), 0600);
  loop_.watch(listenFd_, POLLIN, [this](short) { accept(); });
  return true;
}

void StoreProxy::setAttempt(int attempt) {
  attempt_ = attempt;
  std::vector<std::shared_ptr<Conn>> old;
  for (auto& [fd, c] : conns_)
    if (c->attempt != attempt) old.push_back(c);
  for (auto& c : old) drop(c);
}

void StoreProxy::close() {
  std::vector<std::shared_ptr<Conn>> all;
  for (auto& [fd, c] : conns_) all.push_back(c);
  for (auto& c : all) drop(c);
  if (listenFd_ >= 0) {
    loop_.unwatch(listenFd_);
    ::close(listenFd_);
    listenFd_ = -1;
    unlink(path_.c_str());
  }
}

void StoreProxy::accept() {
  for (;;) {
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (!up_.isOpen()) {
      ::close(fd);
      continue;
    }
    auto c = std::make_shared<Conn>(Conn{fd, attempt_, store::FrameReader(), {}, {}, false});
    conns_[fd] = c;
    loop_.watch(fd, POLLIN, [this, c](short ev) { onConn(c, ev); });
  }
}

void StoreProxy::onConn(const std::shared_ptr<Conn>& c, short revents) {
  if (revents & POLLOUT) flush(c);
  if (c->closed || !(revents & (POLLIN | POLLHUP | POLLERR))) return;
  char buf[65536];
  ssize_t r = read(c->fd, buf, sizeof buf);
  if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return drop(c);
  if (r < 0) return;
  c->reader.feed(reinterpret_cast<const uint8_t*>(buf), size_t(r));
  std::vector<uint8_t> body;
  std::string err;
  for (;;) {
    int got = c->reader.next(body, err);
    if (got < 0) return drop(c);
    if (got == 0) return;
    Message req;
    if (!store::parseBody(body.data(), body.size(), req, err)) return drop(c);
    request(c, req);
    if (c->closed) return;
  }
}

void StoreProxy::request(const std::shared_ptr<Conn>& c, const Message& req) {
  if (req.code == store::kJobKey)
    return reply(c, req.args.empty() ? store::kOk : store::kBadRequest, req.id,
                 req.args.empty() ? std::vector<std::string>{jobKey_} : std::vector<std::string>{});
  if (req.code == store::kWhoAmI) {
    if (!req.args.empty()) return reply(c, store::kBadRequest, req.id, {});
    return reply(c, store::kOk, req.id, {std::to_string(c->attempt), "a" + std::to_string(c->attempt) + "/"});
  }
  if (req.code == store::kCancel) {
    uint32_t target;
    if (req.args.size() != 1 || !parseUint32(req.args[0], target)) return reply(c, store::kBadRequest, req.id, {});
    auto it = c->inFlight.find(target);
    if (it == c->inFlight.end()) return reply(c, store::kOk, req.id, {"0"});
    uint32_t wid = req.id;
    std::weak_ptr<Conn> weak = c;
    up_.send(store::kCancel, {std::to_string(it->second)}, [this, weak, wid](const Message& res, bool lost) {
      auto conn = weak.lock();
      if (!conn || conn->closed) return;
      bool found = !lost && res.code == store::kOk && !res.args.empty() && res.args[0] == "1";
      reply(conn, store::kOk, wid, {found ? "1" : "0"});
    });
    return;
  }
  std::vector<size_t> keys;
  if (!keyArgs(req.code, req.args.size(), keys) || c->inFlight.count(req.id))
    return reply(c, store::kBadRequest, req.id, {});
  const std::string prefix = "a" + std::to_string(c->attempt) + "/";
  for (size_t i : keys)
    if (req.args[i].empty() || prefix.size() + req.args[i].size() > kMaxKey)
      return reply(c, store::kBadRequest, req.id, {});
  std::vector<std::string> args = req.args;
  for (size_t i : keys) args[i] = prefix + args[i];
  size_t size = 6;
  for (const auto& a : args) size += 4 + a.size();
  if (size > store::kMaxBody) return reply(c, store::kBadRequest, req.id, {});
  uint32_t wid = req.id;
  std::weak_ptr<Conn> weak = c;
  uint32_t upId = up_.send(req.code, args, [this, weak, wid](const Message& res, bool lost) {
    auto conn = weak.lock();
    if (!conn || conn->closed) return;
    conn->inFlight.erase(wid);
    // The upstream connection is gone: so is this worker's store.
    if (lost) return drop(conn);
    reply(conn, res.code, wid, res.args);
  });
  if (!c->closed && up_.isOpen()) c->inFlight[wid] = upId;
}

void StoreProxy::reply(const std::shared_ptr<Conn>& c, uint8_t status, uint32_t id,
                       const std::vector<std::string>& args) {
  if (c->closed) return;
  c->out += store::encodeFrame(Message{status, id, args});
  flush(c);
}

void StoreProxy::flush(const std::shared_ptr<Conn>& c) {
  while (!c->closed && !c->out.empty()) {
    ssize_t w = write(c->fd, c->out.data(), c->out.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return drop(c);
    }
    c->out.erase(0, size_t(w));
  }
  if (!c->closed)
    loop_.setEvents(c->fd, short((c->out.size() > kHighOut ? 0 : POLLIN) | (c->out.empty() ? 0 : POLLOUT)));
}

void StoreProxy::drop(const std::shared_ptr<Conn>& c) {
  if (c->closed) return;
  c->closed = true;
  loop_.unwatch(c->fd);
  ::close(c->fd);
  conns_.erase(c->fd);
  // Blocked requests of a worker that went away must not keep counting at a barrier upstream.
  for (auto& [wid, upId] : c->inFlight) up_.cancel(upId);
  c->inFlight.clear();
}

}  // namespace dtrain::agent
