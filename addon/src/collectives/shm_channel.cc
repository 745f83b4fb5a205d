#include "collectives/shm_channel.h"

#include <algorithm>
#include <cstring>

#include "collectives/errors.h"

namespace dtrain {
namespace {

class ShmChannel : public Channel {
 public:
  ShmChannel(ShmRingHdr* out, Bell* myBell, ShmRingHdr* in, Bell* peerBell, std::function<std::string()> peerGone)
      : out_(out),
        outData_(reinterpret_cast<uint8_t*>(out + 1)),
        myBell_(myBell),
        in_(in),
        inData_(reinterpret_cast<uint8_t*>(in + 1)),
        peerBell_(peerBell),
        peerGone_(std::move(peerGone)) {}

  size_t trySend(const void* data, size_t len) override {
    uint64_t head = out_->head.load(std::memory_order_relaxed);
    uint64_t tail = out_->tail.load(std::memory_order_acquire);
    size_t n = std::min(len, size_t(kShmRingCap - (head - tail)));
    if (n == 0) return 0;
    size_t pos = size_t(head % kShmRingCap), first = std::min(n, kShmRingCap - pos);
    std::memcpy(outData_ + pos, data, first);
    std::memcpy(outData_, static_cast<const uint8_t*>(data) + first, n - first);
    out_->head.store(head + n, std::memory_order_release);
    ringBell(*myBell_);
    return n;
  }

  size_t tryRecv(void* data, size_t len) override {
    uint64_t tail = in_->tail.load(std::memory_order_relaxed);
    uint64_t head = in_->head.load(std::memory_order_acquire);
    size_t n = std::min(len, size_t(head - tail));
    if (n == 0) return 0;
    size_t pos = size_t(tail % kShmRingCap), first = std::min(n, kShmRingCap - pos);
    std::memcpy(data, inData_ + pos, first);
    std::memcpy(static_cast<uint8_t*>(data) + first, inData_, n - first);
    in_->tail.store(tail + n, std::memory_order_release);
    ringBell(*myBell_);
    return n;
  }

  void waitReady(bool send, bool recv, int ms) override {
    // Both directions depend on the peer (its reads free space, its writes bring data): its bell rings for both.
    checkAlive(send, recv);
    if (ready(send, recv)) return;
    sleepOnBell(*peerBell_, ms, [&] { return ready(send, recv) || !peerGone_().empty(); });
  }

  void checkAlive(bool send, bool recv) override {
    // Gone first, readiness second: what a peer wrote before it left is visible once its leaving is,
    // so bytes it sent just before exiting are still received.
    std::string gone = peerGone_();
    if (!gone.empty() && !ready(send, recv)) throw CollectiveError(gone);
  }

  void abort(const std::string&) override {}
  const char* transportName() const override { return "shm"; }

 private:
  bool ready(bool send, bool recv) const {
    return (send &&
            out_->head.load(std::memory_order_acquire) - out_->tail.load(std::memory_order_acquire) < kShmRingCap) ||
           (recv && in_->head.load(std::memory_order_acquire) != in_->tail.load(std::memory_order_relaxed));
  }

  ShmRingHdr* out_;
  uint8_t* outData_;
  Bell* myBell_;
  ShmRingHdr* in_;
  uint8_t* inData_;
  Bell* peerBell_;
  std::function<std::string()> peerGone_;
};

}  // namespace

std::unique_ptr<Channel> makeShmChannel(ShmRingHdr* out, Bell* myBell, ShmRingHdr* in, Bell* peerBell,
                                        std::function<std::string()> peerGone, int peerRank) {
  auto ch = std::make_unique<ShmChannel>(out, myBell, in, peerBell, std::move(peerGone));
  ch->peerRank = peerRank;
  return ch;
}

}  // namespace dtrain
