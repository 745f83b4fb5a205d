#include "collectives/tcp_channel.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "collectives/errors.h"

namespace dtrain {
namespace {

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void tuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

class TcpChannel : public Channel {
 public:
  TcpChannel(int fd, int peer) : fd_(fd) {
    peerRank = peer;
    setNonBlocking(fd_);
    tuneSocket(fd_);
    socklen_t len = sizeof(recvBuf_);
    ::getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recvBuf_, &len);
  }
  ~TcpChannel() override { ::close(fd_); }

  size_t trySend(const void* data, size_t len) override {
    if (broken_) throw CollectiveError(brokenReason());
    ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return size_t(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    broken_ = true;
    throw CollectiveError(brokenReason());
  }

  size_t tryRecv(void* data, size_t len) override {
    if (broken_) throw CollectiveError(brokenReason());
    ssize_t n = ::recv(fd_, data, len, MSG_DONTWAIT);
    if (n > 0) return size_t(n);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    broken_ = true;
    throw CollectiveError(brokenReason());
  }

  void waitReady(bool send, bool recv, int ms) override {
    pollfd p{fd_, short((send ? POLLOUT : 0) | (recv ? POLLIN : 0)), 0};
    ::poll(&p, 1, ms);
  }

  int pollFd() const override { return fd_; }
  void setRecvWake(size_t bytes) override {
    // At most a quarter of the receive buffer: the peer must be able to send that much before it waits for
    // this rank to read (rmem_max may cap the buffer far below what tuneSocket asks for).
    int v = int(std::min(bytes, size_t(std::max(recvBuf_ / 4, 1))));
    if (v == recvWake_) return;
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0) recvWake_ = v;
  }
  void abort(const std::string&) override {
    broken_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // the peer sees the connection end at once instead of waiting for a timeout
  }
  const char* transportName() const override { return "tcp"; }

 private:
  std::string brokenReason() const {
    return "rank " + std::to_string(peerRank) + " closed its connection (it failed or exited)";
  }
  int fd_;
  int recvBuf_ = 0;                  // SO_RCVBUF as the kernel granted it
  int recvWake_ = 1;                 // SO_RCVLOWAT as last set (the progress thread's, or the rank's inline op's)
  std::atomic<bool> broken_{false};  // abort() may come from the JS thread while the progress thread moves bytes
};

}  // namespace

std::unique_ptr<Channel> makeTcpChannel(int fd, int peerRank) { return std::make_unique<TcpChannel>(fd, peerRank); }

}  // namespace dtrain
