#include "collectives/tcp_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netdb.h>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "collectives/errors.h"
#include "collectives/sha256.h"
#include "collectives/shm_region.h"

namespace dtrain {
namespace {

constexpr uint32_t kHelloMagic = 0x44545248;  // "DTRH"
constexpr int kHandshakeMs = 5000;
// An accepted connection must finish its side of the handshake this soon or is dropped: a real peer sends
// its Hello right after connecting, and nothing a stranger does may hold up the others.
constexpr int kPreAuthMs = 2000;
constexpr size_t kMaxPending = 256;  // unauthenticated connections held at once; the oldest goes first

struct Hello {
  uint32_t magic;
  uint32_t version;
  uint64_t groupId;
  int32_t from, to;
  uint8_t nonce[16];
};

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

namespace {

bool isLoopbackName(const std::string& host) {
  return host.empty() || host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// The source address of the route to `host` (a UDP connect sends nothing).
std::string routeTo(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), "9", &hints, &res); rc != 0)
    throw CollectiveError("cannot resolve MASTER_ADDR=" + host + " to choose the peer address (" + ::gai_strerror(rc) +
                          "): set DTRAIN_SOCKET_IFNAME");
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  int err = errno;
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(res);
  if (!ok)
    throw CollectiveError("no route to MASTER_ADDR=" + host + " to choose the peer address (" + std::strerror(err) +
                          "): set DTRAIN_SOCKET_IFNAME");
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf));
  return buf;
}

// NCCL_SOCKET_IFNAME's grammar: a comma list of name prefixes, `=` before the list for exact names,
// `^` for names to avoid.
bool ifnameMatches(const std::string& spec, const std::string& name) {
  std::string list = spec;
  bool exclude = !list.empty() && list[0] == '^';
  if (exclude) list.erase(0, 1);
  bool exact = !list.empty() && list[0] == '=';
  if (exact) list.erase(0, 1);
  bool hit = false;
  for (size_t start = 0; start <= list.size() && !hit;) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (!item.empty()) hit = exact ? name == item : name.rfind(item, 0) == 0;
  }
  return hit != exclude;
}

}  // namespace

std::string choosePeerAddress(const std::string& ifname, const std::string& masterAddr) {
  if (ifname.empty()) return isLoopbackName(masterAddr) ? "127.0.0.1" : routeTo(masterAddr);
  ifaddrs* ifs = nullptr;
  std::string found, seen;
  if (::getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
      seen += (seen.empty() ? "" : ", ") + std::string(i->ifa_name);
      if (!found.empty() || !ifnameMatches(ifname, i->ifa_name)) continue;
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
      found = buf;
    }
    ::freeifaddrs(ifs);
  }
  if (found.empty())
    throw CollectiveError("DTRAIN_SOCKET_IFNAME=" + ifname + " matches no interface with an IPv4 address (" +
                          (seen.empty() ? std::string("none") : seen) + ")");
  return found;
}

struct TcpListener::Pending {
  int fd;
  Clock::time_point until;  // dropped unless authenticated by then
  bool challenged = false;  // its Hello was answered; now its proof is due
  size_t have = 0;
  uint8_t in[sizeof(Hello)];
  Hello hello;
  uint8_t reply[48];
};

TcpListener::TcpListener(std::string jobKey, const std::string& bindAddr, int myRank)
    : key_(std::move(jobKey)), addr_(bindAddr), myRank_(myRank) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw CollectiveError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (::inet_pton(AF_INET, bindAddr.c_str(), &sa.sin_addr) != 1)
    throw CollectiveError("cannot listen for peer connections: " + bindAddr + " is not an IPv4 address");
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd_, 128) != 0)
    throw CollectiveError("cannot listen for peer connections on " + bindAddr + ": " + std::strerror(errno));
  socklen_t len = sizeof(sa);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw CollectiveError(std::string("cannot listen for peer connections: pipe: ") + std::strerror(errno));
  thread_ = std::thread([this] { serve(); });
}

TcpListener::~TcpListener() {
  char stop = 1;
  (void)!::write(wake_[1], &stop, 1);
  thread_.join();
  for (auto& kv : early_) ::close(kv.second);
  for (auto& p : pending_) ::close(p.fd);
  ::close(wake_[0]);
  ::close(wake_[1]);
  ::close(fd_);
}

std::string TcpListener::endpoint() const { return addr_ + ":" + std::to_string(port_); }

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
        // It proved the key, so it holds ours too: it dropped a handshake that ran past its pre-auth deadline.
        lastError = addr + ": handshake not finished in time";
        ::close(fd);
        continue;
      }
      return fd;
    }
    if (d.passed()) throw CollectiveError("cannot connect to rank " + std::to_string(toRank) + " (" + lastError + ")");
    ::poll(nullptr, 0, std::min(100, d.msLeft() + 1));
  }
}

TcpListener::Step TcpListener::advance(Pending& p) {
  const size_t need = p.challenged ? 32 : sizeof(Hello);
  for (;;) {
    ssize_t n = ::recv(p.fd, p.in + p.have, need - p.have, MSG_DONTWAIT);
    if (n > 0) p.have += size_t(n);
    if (p.have == need) break;
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? Step::waiting : Step::refused;
  }
  p.have = 0;
  if (!p.challenged) {
    std::memcpy(&p.hello, p.in, sizeof(Hello));
    const Hello& h = p.hello;
    if (h.magic != kHelloMagic || h.version != 1 || h.to != myRank_) return Step::refused;
    fillNonce(p.reply);
    Digest mac = hmacSha256(key_, macInput("dtrain-peer-server", h, p.reply));
    std::memcpy(p.reply + 16, mac.data(), 32);
    // A fresh socket's buffer takes 48 bytes at once; a peer that cannot take them is not one.
    if (::send(p.fd, p.reply, sizeof(p.reply), MSG_NOSIGNAL | MSG_DONTWAIT) != ssize_t(sizeof(p.reply)))
      return Step::refused;
    p.challenged = true;
    return advance(p);
  }
  Digest expect = hmacSha256(key_, macInput("dtrain-peer-client", p.hello, p.reply));
  uint8_t ack = 'A';
  if (!digestsEqual(expect.data(), p.in) || ::send(p.fd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
    return Step::refused;
  return Step::authenticated;
}

void TcpListener::serve() {
  // Every connection is handshaken side by side with a short deadline of its own, whether or not a group
  // is forming, so idle or slow strangers cost a slot for a moment and never hold up a real peer.
  for (;;) {
    auto now = Clock::now();
    int waitMs = 1000;
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {fd_, POLLIN, 0}};
    for (auto& p : pending_) {
      fds.push_back({p.fd, POLLIN, 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(p.until - now).count();
      waitMs = int(std::max<int64_t>(0, std::min<int64_t>(waitMs, left + 1)));
    }
    ::poll(fds.data(), fds.size(), waitMs);
    if (fds[0].revents) return;
    now = Clock::now();
    std::vector<Pending> keep;
    for (size_t i = 0; i < pending_.size(); ++i) {
      Pending& p = pending_[i];
      Step step = fds[i + 2].revents ? advance(p) : Step::waiting;
      if (step == Step::waiting && now >= p.until) step = Step::refused;
      if (step == Step::waiting) keep.push_back(p);
      if (step == Step::authenticated) settle(p);
      if (step == Step::refused) {
        ++refused_;  // wrong key, wrong rank, too slow or not a dtrain peer: drop it, the real one gets through
        ::close(p.fd);
      }
    }
    pending_.swap(keep);
    if (!fds[1].revents) continue;
    for (;;) {
      int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) break;
      if (pending_.size() >= kMaxPending) {
        ++refused_;
        ::close(pending_.front().fd);
        pending_.erase(pending_.begin());
      }
      Pending p{};
      p.fd = fd;
      p.until = Clock::now() + std::chrono::milliseconds(kPreAuthMs);
      pending_.push_back(p);
    }
  }
}

void TcpListener::settle(const Pending& p) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto key = std::make_pair(p.hello.groupId, int(p.hello.from));
  if (early_.count(key)) ::close(early_[key]);
  early_[key] = p.fd;
  arrived_.notify_all();
}

int TcpListener::acceptPeer(uint64_t groupId, int fromRank, const Deadline& d) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = early_.find({groupId, fromRank});
    if (it != early_.end()) {
      int fd = it->second;
      early_.erase(it);
      return fd;
    }
    if (d.passed())
      throw CollectiveError("timed out after " + std::to_string(d.timeoutMs) + " ms waiting for rank " +
                            std::to_string(fromRank) + " to connect (rendezvous timeout)");
    arrived_.wait_for(lock, std::chrono::milliseconds(std::min(100, d.msLeft() + 1)));
  }
}

}  // namespace dtrain
