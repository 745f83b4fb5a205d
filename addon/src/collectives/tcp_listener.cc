#include "collectives/tcp_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collectives/errors.h"
#include "collectives/sha256.h"
#include "collectives/shm_region.h"

namespace dtrain {
namespace {

constexpr uint32_t kHelloMagic = 0x44545248;  // "DTRH"
constexpr int kHandshakeMs = 5000;

struct Hello {
  uint32_t magic;
  uint32_t version;
  uint64_t groupId;
  int32_t from, to;
  uint8_t nonce[16];
};

void setBlocking(int fd, bool blocking) {
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK));
}

// Reads/writes exactly len bytes within ms; false on timeout, EOF or error.
bool ioExact(int fd, void* p, size_t len, bool write, int ms) {
  Deadline d = Deadline::in(ms);
  size_t done = 0;
  while (done < len) {
    ssize_t n = write ? ::send(fd, static_cast<uint8_t*>(p) + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                      : ::recv(fd, static_cast<uint8_t*>(p) + done, len - done, MSG_DONTWAIT);
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n == 0 && !write) return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    pollfd pf{fd, short(write ? POLLOUT : POLLIN), 0};
    if (d.passed() || ::poll(&pf, 1, d.msLeft()) == 0) return false;
  }
  return true;
}

std::string macInput(const char* role, const Hello& h, const uint8_t* serverNonce) {
  std::string s(role);
  s.append(reinterpret_cast<const char*>(&h), sizeof(h));
  s.append(reinterpret_cast<const char*>(serverNonce), 16);
  return s;
}

void fillNonce(uint8_t* n) {
  uint64_t a = randomU64(), b = randomU64();
  std::memcpy(n, &a, 8);
  std::memcpy(n + 8, &b, 8);
}

}  // namespace

uint64_t hashGroupId(const std::string& name) {
  Digest d = sha256(reinterpret_cast<const uint8_t*>(name.data()), name.size());
  uint64_t v;
  std::memcpy(&v, d.data(), 8);
  return v;
}

TcpListener::TcpListener(std::string jobKey) : key_(std::move(jobKey)) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw CollectiveError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd_, 128) != 0)
    throw CollectiveError(std::string("cannot listen for peer connections: ") + std::strerror(errno));
  socklen_t len = sizeof(sa);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  setBlocking(fd_, false);
}

TcpListener::~TcpListener() {
  for (auto& kv : early_) ::close(kv.second);
  if (fd_ >= 0) ::close(fd_);
}

std::string TcpListener::endpoint() const {
  std::string addrs;
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
      auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) continue;
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
      addrs += std::string(buf) + ",";
    }
    ::freeifaddrs(ifs);
  }
  return addrs + "127.0.0.1:" + std::to_string(port_);
}

int TcpListener::connectPeer(const std::string& endpoint, uint64_t groupId, int fromRank, int toRank,
                             const Deadline& d) {
  size_t colon = endpoint.rfind(':');
  int port = std::stoi(endpoint.substr(colon + 1));
  std::string list = endpoint.substr(0, colon), lastError = "no address";
  // A peer that is slow to reach its accept (a loaded host) fails a handshake; go round the addresses
  // again until the rendezvous deadline rather than failing the whole job on the first pass.
  for (;;) {
    for (size_t start = 0; start <= list.size();) {
      size_t comma = list.find(',', start);
      std::string addr = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? list.size() + 1 : comma + 1;
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(uint16_t(port));
      if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) continue;
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof(err);
        if (::poll(&p, 1, std::min(2000, d.msLeft())) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
            err == 0)
          rc = 0;
        else
          errno = err ? err : ETIMEDOUT;
      }
      if (rc != 0) {
        lastError = addr + ": " + std::strerror(errno);
        ::close(fd);
        continue;
      }
      const int hsMs = std::max(1, std::min(kHandshakeMs, d.msLeft()));
      Hello h{kHelloMagic, 1, groupId, fromRank, toRank, {}};
      fillNonce(h.nonce);
      uint8_t reply[48];
      if (!ioExact(fd, &h, sizeof(h), true, hsMs) || !ioExact(fd, reply, sizeof(reply), false, hsMs)) {
        lastError = addr + ": handshake failed (the peer refused or went away)";
        ::close(fd);
        continue;
      }
      Digest expect = hmacSha256(key_, macInput("dtrain-peer-server", h, reply));
      if (!digestsEqual(expect.data(), reply + 16)) {
        ::close(fd);
        throw CollectiveError("rank " + std::to_string(toRank) + " at " + addr +
                              " could not prove it holds the job key: refusing the connection");
      }
      Digest mine = hmacSha256(key_, macInput("dtrain-peer-client", h, reply));
      uint8_t ack = 0;
      if (!ioExact(fd, mine.data(), 32, true, hsMs) || !ioExact(fd, &ack, 1, false, hsMs) || ack != 'A') {
        ::close(fd);
        throw CollectiveError("rank " + std::to_string(toRank) + " refused this rank's credentials");
      }
      return fd;
    }
    if (d.passed()) throw CollectiveError("cannot connect to rank " + std::to_string(toRank) + " (" + lastError + ")");
    ::poll(nullptr, 0, std::min(100, d.msLeft() + 1));
  }
}

bool TcpListener::handshakeAsServer(int fd, int myRank, uint64_t& groupId, int& fromRank) {
  Hello h{};
  if (!ioExact(fd, &h, sizeof(h), false, kHandshakeMs) || h.magic != kHelloMagic || h.version != 1 || h.to != myRank)
    return false;
  uint8_t reply[48];
  fillNonce(reply);
  Digest mac = hmacSha256(key_, macInput("dtrain-peer-server", h, reply));
  std::memcpy(reply + 16, mac.data(), 32);
  uint8_t theirs[32];
  if (!ioExact(fd, reply, sizeof(reply), true, kHandshakeMs) || !ioExact(fd, theirs, 32, false, kHandshakeMs))
    return false;
  Digest expect = hmacSha256(key_, macInput("dtrain-peer-client", h, reply));
  if (!digestsEqual(expect.data(), theirs)) return false;
  uint8_t ack = 'A';
  if (!ioExact(fd, &ack, 1, true, kHandshakeMs)) return false;
  groupId = h.groupId;
  fromRank = h.from;
  return true;
}

int TcpListener::acceptPeer(uint64_t groupId, int fromRank, int myRank, const Deadline& d) {
  for (;;) {
    auto it = early_.find({groupId, fromRank});
    if (it != early_.end()) {
      int fd = it->second;
      early_.erase(it);
      return fd;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, std::min(100, d.msLeft() + 1)) <= 0) {
      if (d.passed())
        throw CollectiveError("timed out after " + std::to_string(d.timeoutMs) + " ms waiting for rank " +
                              std::to_string(fromRank) + " to connect (rendezvous timeout)");
      continue;
    }
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    setBlocking(fd, false);
    uint64_t gid = 0;
    int from = -1;
    if (!handshakeAsServer(fd, myRank, gid, from)) {
      ++refused_;  // wrong key, wrong rank or not a dtrain peer: drop it and keep waiting for the real one
      ::close(fd);
      continue;
    }
    auto key = std::make_pair(gid, from);
    if (early_.count(key)) ::close(early_[key]);
    early_[key] = fd;
  }
}

}  // namespace dtrain
