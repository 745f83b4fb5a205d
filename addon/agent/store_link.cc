#include "store_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "collectives/sha256.h"

namespace dtrain::agent {

namespace {
constexpr size_t kNonce = 32, kMac = 32, kSeq = 8;

std::string hmacLabel(const std::string& key, const char* label, const std::string& nc, const std::string& ns) {
  std::string msg = std::string(label) + '\0' + nc + ns;
  auto d = hmacSha256(key, msg);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

void putU32(std::string& out, uint32_t v) {
  out += char(v >> 24), out += char(v >> 16), out += char(v >> 8), out += char(v);
}

uint32_t getU32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// Blocking read of one frame body within the deadline.
bool readFrame(int fd, int64_t deadline, std::string& body, std::string& error) {
  auto readExact = [&](size_t n, std::string& out) {
    out.resize(n);
    size_t got = 0;
    while (got < n) {
      int64_t left = deadline - nowMs();
      if (left <= 0) return error = "timed out", false;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      ssize_t r = read(fd, &out[got], n - got);
      if (r == 0) return error = "the store closed the connection", false;
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return error = strerror(errno), false;
      }
      got += size_t(r);
    }
    return true;
  };
  std::string len;
  if (!readExact(4, len)) return false;
  uint32_t n = getU32(reinterpret_cast<const uint8_t*>(len.data()));
  if (n > 256) return error = "handshake message too long", false;
  return readExact(n, body);
}

bool writeAllBlocking(int fd, const std::string& bytes, int64_t deadline, std::string& error) {
  size_t done = 0;
  while (done < bytes.size()) {
    int64_t left = deadline - nowMs();
    if (left <= 0) return error = "timed out", false;
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return error = strerror(errno), false;
    }
    done += size_t(w);
  }
  return true;
}

// `len:u32be` + bytes: a handshake message, or an envelope.
std::string framed(const std::string& bytes) {
  std::string out;
  putU32(out, uint32_t(bytes.size()));
  return out + bytes;
}

const char* rejectText(uint8_t reason) {
  switch (reason) {
    case 1:
      return "protocol version mismatch (dtrain versions differ)";
    case 2:
      return "the store rejected our proof of the job key (wrong job key)";
    case 3:
      return "the store has too many connections still authenticating";
    default:
      return "rejected";
  }
}
}  // namespace

StoreLink::~StoreLink() { close(); }

bool StoreLink::open(const std::string& host, int port, const std::string& jobKey, int timeoutMs, std::string& error) {
  const int64_t deadline = nowMs() + timeoutMs;
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return error = "cannot connect to the store: host name not found (" + host + ")", false;
  std::string lastError = "no address";
  for (addrinfo* ai = res; ai && fd_ < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
      lastError = errno == ECONNREFUSED ? "connection refused (is the launcher still running?)" : strerror(errno);
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int64_t left = deadline - nowMs();
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
      ::close(fd);
      freeaddrinfo(res);
      return error = "cannot reach the store within " + std::to_string(timeoutMs) + " ms (" + where + ")", false;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
      lastError = soerr == ECONNREFUSED ? "connection refused (is the launcher still running?)" : strerror(soerr);
      ::close(fd);
      continue;
    }
    fd_ = fd;
  }
  freeaddrinfo(res);
  if (fd_ < 0) return error = "cannot connect to the store at " + where + ": " + lastError, false;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  auto failAuth = [&](const std::string& why) {
    ::close(fd_);
    fd_ = -1;
    error = "store at " + where + ": " + why;
    return false;
  };
  std::string nonceC(kNonce, '\0');
  if (getrandom(&nonceC[0], kNonce, 0) != ssize_t(kNonce)) return failAuth("no random bytes for the handshake");
  std::string hello = std::string("DTS") + char(1) + char(1) + nonceC;
  std::string body, why;
  if (!writeAllBlocking(fd_, framed(hello), deadline, why)) return failAuth("authentication: " + why);
  if (!readFrame(fd_, deadline, body, why)) return failAuth("authentication: " + why);
  if (body.size() >= 5 && body.compare(0, 3, "DTS") == 0 && body[3] == 4) return failAuth(rejectText(uint8_t(body[4])));
  if (body.size() != 5 + kNonce + kMac || body.compare(0, 3, "DTS") != 0 || body[3] != 2)
    return failAuth("not a dtrain store handshake message");
  if (body[4] != 1)
    return failAuth("protocol version mismatch: the store speaks " + std::to_string(uint8_t(body[4])) +
                    ", this agent 1");
  std::string nonceS = body.substr(5, kNonce);
  std::string expect = hmacLabel(jobKey, "dtrain-store v1 server proof", nonceC, nonceS);
  if (!digestsEqual(reinterpret_cast<const uint8_t*>(body.data() + 5 + kNonce),
                    reinterpret_cast<const uint8_t*>(expect.data())))
    return failAuth("the store did not prove knowledge of the job key (wrong job key, or another job on this port)");
  std::string proof = std::string("DTS") + char(3) + hmacLabel(jobKey, "dtrain-store v1 client proof", nonceC, nonceS);
  if (!writeAllBlocking(fd_, framed(proof), deadline, why)) return failAuth("authentication: " + why);
  sendKey_ = hmacLabel(jobKey, "dtrain-store v1 key client to server", nonceC, nonceS);
  recvKey_ = hmacLabel(jobKey, "dtrain-store v1 key server to client", nonceC, nonceS);
  // The welcome: the first sealed frame, a response with status 0 and id 0. A REJECT comes unsealed.
  if (!readFrame(fd_, deadline, body, why)) return failAuth("authentication: " + why);
  if (body.size() == 6 && body.compare(0, 3, "DTS") == 0 && body[3] == 4) return failAuth(rejectText(uint8_t(body[4])));
  if (body.size() < kSeq + kMac) return failAuth("authentication: malformed welcome");
  auto mac = hmacSha256(recvKey_, body.substr(0, body.size() - kMac));
  if (!digestsEqual(mac.data(), reinterpret_cast<const uint8_t*>(body.data() + body.size() - kMac)) ||
      body.compare(0, kSeq, std::string(kSeq, '\0')) != 0)
    return failAuth("authentication: the welcome does not verify");
  recvSeq_ = 1;
  loop_.watch(fd_, POLLIN, [this](short ev) { onEvents(ev); });
  return true;
}

uint32_t StoreLink::send(uint8_t op, const std::vector<std::string>& args, Reply reply) {
  uint32_t id = nextId_++;
  if (nextId_ == 0) nextId_ = 1;
  if (fd_ < 0) {
    reply(Message{}, true);
    return id;
  }
  // The envelope signs the body alone: the frame codec's output without its length prefix.
  const std::string body = store::encodeFrame(Message{op, id, args}).substr(4);
  std::string env;
  for (int i = 7; i >= 0; i--) env += char((sendSeq_ >> (i * 8)) & 0xff);
  sendSeq_++;
  env += body;
  auto mac = hmacSha256(sendKey_, env);
  env.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  out_ += framed(env);
  pending_[id] = std::move(reply);
  flush();
  return id;
}

void StoreLink::cancel(uint32_t id) {
  if (pending_.count(id)) send(store::kCancel, {std::to_string(id)}, [](const Message&, bool) {});
}

void StoreLink::flush() {
  while (fd_ >= 0 && !out_.empty()) {
    ssize_t w = write(fd_, out_.data(), out_.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return fail(std::string("store connection: ") + strerror(errno));
    }
    out_.erase(0, size_t(w));
  }
  if (fd_ >= 0) loop_.setEvents(fd_, short(POLLIN | (out_.empty() ? 0 : POLLOUT)));
}

void StoreLink::onEvents(short revents) {
  if (revents & POLLOUT) flush();
  if (fd_ < 0 || !(revents & (POLLIN | POLLHUP | POLLERR))) return;
  char buf[65536];
  ssize_t r = read(fd_, buf, sizeof buf);
  if (r == 0) return fail("the store closed the connection");
  if (r < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    return fail(std::string("store connection: ") + strerror(errno));
  }
  reader_.feed(reinterpret_cast<const uint8_t*>(buf), size_t(r));
  std::vector<uint8_t> env;
  std::string err;
  for (;;) {
    int got = reader_.next(env, err);
    if (got < 0) return fail("store connection: " + err);
    if (got == 0) break;
    if (env.size() < kSeq + kMac) return fail("store connection: envelope too short");
    std::string signedPart(reinterpret_cast<const char*>(env.data()), env.size() - kMac);
    auto mac = hmacSha256(recvKey_, signedPart);
    if (!digestsEqual(mac.data(), env.data() + env.size() - kMac))
      return fail("store connection: frame MAC does not match");
    uint64_t seq = 0;
    for (size_t i = 0; i < kSeq; i++) seq = (seq << 8) | env[i];
    if (seq != recvSeq_) return fail("store connection: frame out of sequence");
    recvSeq_++;
    Message res;
    if (!store::parseBody(env.data() + kSeq, env.size() - kSeq - kMac, res, err))
      return fail("store connection: " + err);
    auto it = pending_.find(res.id);
    if (it == pending_.end()) continue;
    Reply reply = std::move(it->second);
    pending_.erase(it);
    reply(res, false);
    if (fd_ < 0) return;
  }
}

void StoreLink::fail(const std::string& why) {
  if (fd_ < 0) return;
  close();
  if (onLost) onLost(why);
}

void StoreLink::close() {
  if (fd_ < 0) return;
  loop_.unwatch(fd_);
  ::close(fd_);
  fd_ = -1;
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, reply] : pending) reply(Message{}, true);
}

}  // namespace dtrain::agent
