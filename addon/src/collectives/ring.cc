#include "collectives/ring.h"

#include <poll.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "collectives/errors.h"
#include "collectives/half.h"
#include "collectives/reduce.h"

namespace dtrain {
namespace {

struct Xfer {
  Channel* ch;
  bool send;
  uint8_t* p;
  size_t len;
  size_t done = 0;
};

// Drives every transfer to completion; onRecv(i, doneBytes) reports receive progress for pipelining.
void runTransfers(std::vector<Xfer>& xs, const Deadline& d, const std::function<void(size_t, size_t)>& onRecv = {}) {
  int idle = 0;
  for (;;) {
    bool progress = false, pending = false;
    for (size_t i = 0; i < xs.size(); ++i) {
      Xfer& x = xs[i];
      if (x.done == x.len) continue;
      size_t n = x.send ? x.ch->trySend(x.p + x.done, x.len - x.done) : x.ch->tryRecv(x.p + x.done, x.len - x.done);
      if (n) {
        x.done += n;
        progress = true;
        if (!x.send && onRecv) onRecv(i, x.done);
      }
      if (x.done < x.len) pending = true;
    }
    if (!pending) return;
    if (progress) {
      idle = 0;
      continue;
    }
    if (++idle < 64) {
      cpuRelax();
      continue;
    }
    if (closing() || d.passed()) {
      std::string who;
      for (auto& x : xs)
        if (x.done < x.len) who += (who.empty() ? "" : ", ") + std::to_string(x.ch->peerRank);
      if (closing()) throw CollectiveError("dist.close() was called while this op waited for rank(s) " + who);
      throw CollectiveError("timed out after " + std::to_string(d.timeoutMs) + " ms waiting for rank(s) " + who +
                            " (collective_timeout; did every rank call the same op?)");
    }
    std::vector<pollfd> fds;
    for (auto& x : xs)
      if (x.done < x.len && x.ch->pollFd() >= 0) fds.push_back({x.ch->pollFd(), short(x.send ? POLLOUT : POLLIN), 0});
    if (!fds.empty()) {
      ::poll(fds.data(), fds.size(), std::min(10, d.msLeft() + 1));
    } else {
      for (auto& x : xs)
        if (x.done < x.len) {
          x.ch->waitReady(x.send, !x.send, 2);
          break;
        }
    }
  }
}

struct Piece {
  size_t begin, count;
};
Piece pieceOf(size_t count, int parts, int i) {
  size_t b = count * size_t(i) / size_t(parts), e = count * size_t(i + 1) / size_t(parts);
  return {b, e - b};
}
int mod(int a, int p) { return ((a % p) + p) % p; }

constexpr size_t kPipelineBytes = 128 * 1024;

// One ring step: send [sp, sp+sl) to next while receiving sl' bytes from prev into `tmp`, reducing each
// completed chunk into `acc` as it lands (so reduction overlaps the transfer).
void ringStepReduce(const RingView& v, const uint8_t* sp, size_t sl, uint8_t* acc, uint8_t* tmp, size_t rl, DType t,
                    RedOp op, const Deadline& d) {
  int P = v.size();
  Channel* next = v.channels[size_t(mod(v.me + 1, P))];
  Channel* prev = v.channels[size_t(mod(v.me - 1, P))];
  std::vector<Xfer> xs{{next, true, const_cast<uint8_t*>(sp), sl}, {prev, false, tmp, rl}};
  size_t esz = dtypeSize(t), reduced = 0;
  auto reduceUpTo = [&](size_t upTo) {
    upTo -= upTo % esz;
    if (upTo <= reduced) return;
    const void* ins[2] = {acc + reduced, tmp + reduced};
    reduceInto(acc + reduced, ins, 2, (upTo - reduced) / esz, t, op == RedOp::avg ? RedOp::sum : op);
    reduced = upTo;
  };
  runTransfers(xs, d, [&](size_t, size_t done) {
    if (done - reduced >= kPipelineBytes || done == rl) reduceUpTo(done);
  });
  reduceUpTo(rl);
}

void ringStepCopy(const RingView& v, const uint8_t* sp, size_t sl, uint8_t* rp, size_t rl, const Deadline& d) {
  int P = v.size();
  Channel* next = v.channels[size_t(mod(v.me + 1, P))];
  Channel* prev = v.channels[size_t(mod(v.me - 1, P))];
  std::vector<Xfer> xs{{next, true, const_cast<uint8_t*>(sp), sl}, {prev, false, rp, rl}};
  runTransfers(xs, d);
}

}  // namespace

std::string describeHeader(const OpHeader& h) {
  if (h.kind == kP2p)
    return std::string("send(") + dtypeName(DType(h.dtype)) + " x " + std::to_string(h.count) + ", tag " +
           std::to_string(h.root) + ")";
  std::string s =
      std::string(opKindName(OpKind(h.kind))) + "(" + dtypeName(DType(h.dtype)) + " x " + std::to_string(h.count);
  if (h.kind == uint32_t(OpKind::allReduce) || h.kind == uint32_t(OpKind::reduceScatter))
    s += std::string(", ") + redOpName(RedOp(h.redop));
  if (h.kind == uint32_t(OpKind::broadcast)) s += ", root " + std::to_string(h.root);
  return s + ", op #" + std::to_string(h.seq) + ")";
}

void checkHeaders(const RingView& v, const OpHeader& mine, const Deadline& d) {
  int P = v.size();
  std::vector<OpHeader> theirs(static_cast<size_t>(P));
  std::vector<Xfer> xs;
  for (int i = 0; i < P; ++i) {
    if (i == v.me) continue;
    xs.push_back(
        {v.channels[size_t(i)], true, reinterpret_cast<uint8_t*>(const_cast<OpHeader*>(&mine)), sizeof(OpHeader)});
    xs.push_back({v.channels[size_t(i)], false, reinterpret_cast<uint8_t*>(&theirs[size_t(i)]), sizeof(OpHeader)});
  }
  runTransfers(xs, d);
  theirs[size_t(v.me)] = mine;
  // Everyone compares the same table, so everyone names the same first disagreement.
  for (int i = 1; i < P; ++i) {
    const OpHeader& a = theirs[0];
    const OpHeader& b = theirs[size_t(i)];
    if (b.magic != kHeaderMagic)
      throw CollectiveError("rank " + std::to_string(v.globalRanks[size_t(i)]) + " sent garbage on group " +
                            v.groupName + " (the peers are out of step)");
    const char* what = a.kind != b.kind     ? "op"
                       : a.dtype != b.dtype ? "dtype"
                       : a.count != b.count ? "size"
                       : a.redop != b.redop ? "reduce op"
                       : a.root != b.root   ? "root"
                       : a.seq != b.seq     ? "order"
                                            : nullptr;
    if (what)
      throw CollectiveError(std::string(opKindName(OpKind(mine.kind))) + " mismatch (" + what + ") on group " +
                            v.groupName + ": rank " + std::to_string(v.globalRanks[0]) + " called " +
                            describeHeader(a) + ", rank " + std::to_string(v.globalRanks[size_t(i)]) + " called " +
                            describeHeader(b));
  }
}

namespace {

// Sums and products of 16-bit floats travel the ring as fp32 partials: rounding them to 16 bits at every
// hop would make the result depend on which rank holds which value (1 + ulp/2 rounds back to 1). The
// finished values are rounded once, as the shared-memory path does. max and min are exact either way.
bool accumulateWide(DType t, RedOp op) {
  return (t == DType::bf16 || t == DType::f16) && op != RedOp::max && op != RedOp::min;
}

std::vector<float> widen(const void* src, size_t n, DType t) {
  std::vector<float> out(n);
  const uint16_t* h = static_cast<const uint16_t*>(src);
  for (size_t i = 0; i < n; ++i) out[i] = t == DType::bf16 ? bf16ToF32(h[i]) : f16ToF32(h[i]);
  return out;
}

void narrow(const float* src, void* dst, size_t n, DType t) {
  uint16_t* h = static_cast<uint16_t*>(dst);
  for (size_t i = 0; i < n; ++i) h[i] = t == DType::bf16 ? f32ToBf16(src[i]) : f32ToF16(src[i]);
}

// After it, rank r holds the fully reduced piece (r + 1) mod P.
void reduceScatterPhase(const RingView& v, uint8_t* b, size_t count, DType t, RedOp op, const Deadline& d) {
  int P = v.size(), r = v.me;
  size_t esz = dtypeSize(t);
  std::vector<uint8_t> tmp((count / size_t(P) + 1) * esz);
  for (int s = 0; s < P - 1; ++s) {
    Piece sp = pieceOf(count, P, mod(r - s, P)), rp = pieceOf(count, P, mod(r - s - 1, P));
    ringStepReduce(v, b + sp.begin * esz, sp.count * esz, b + rp.begin * esz, tmp.data(), rp.count * esz, t, op, d);
  }
}

void allGatherPhase(const RingView& v, uint8_t* b, size_t count, DType t, const Deadline& d) {
  int P = v.size(), r = v.me;
  size_t esz = dtypeSize(t);
  for (int s = 0; s < P - 1; ++s) {
    Piece sp = pieceOf(count, P, mod(r + 1 - s, P)), rp = pieceOf(count, P, mod(r - s, P));
    ringStepCopy(v, b + sp.begin * esz, sp.count * esz, b + rp.begin * esz, rp.count * esz, d);
  }
}

}  // namespace

void ringAllReduce(const RingView& v, void* buf, size_t count, DType t, RedOp op, const Deadline& d) {
  uint8_t* b = static_cast<uint8_t*>(buf);
  if (accumulateWide(t, op)) {
    std::vector<float> wide = widen(buf, count, t);
    reduceScatterPhase(v, reinterpret_cast<uint8_t*>(wide.data()), count, DType::f32, op, d);
    Piece own = pieceOf(count, v.size(), mod(v.me + 1, v.size()));
    narrow(wide.data() + own.begin, b + own.begin * dtypeSize(t), own.count, t);
  } else {
    reduceScatterPhase(v, b, count, t, op, d);
  }
  allGatherPhase(v, b, count, t, d);
}

void ringReduceScatter(const RingView& v, const void* in, void* out, size_t n, DType t, RedOp op, const Deadline& d) {
  int P = v.size(), r = v.me;
  if (accumulateWide(t, op)) {
    std::vector<float> work = widen(in, n * size_t(P), t);
    std::vector<float> tmp(n + 1);
    size_t bytes = n * sizeof(float);
    uint8_t* w = reinterpret_cast<uint8_t*>(work.data());
    for (int s = 0; s < P - 1; ++s) {
      size_t sp = size_t(mod(r - s - 1, P)), rp = size_t(mod(r - s - 2, P));
      ringStepReduce(v, w + sp * bytes, bytes, w + rp * bytes, reinterpret_cast<uint8_t*>(tmp.data()), bytes,
                     DType::f32, op, d);
    }
    narrow(work.data() + size_t(r) * n, out, n, t);
    return;
  }
  size_t esz = dtypeSize(t), bytes = n * esz;
  std::vector<uint8_t> work(static_cast<const uint8_t*>(in), static_cast<const uint8_t*>(in) + bytes * size_t(P));
  std::vector<uint8_t> tmp(bytes + 1);
  for (int s = 0; s < P - 1; ++s) {
    size_t sp = size_t(mod(r - s - 1, P)), rp = size_t(mod(r - s - 2, P));
    ringStepReduce(v, work.data() + sp * bytes, bytes, work.data() + rp * bytes, tmp.data(), bytes, t, op, d);
  }
  std::memcpy(out, work.data() + size_t(r) * bytes, bytes);
}

void ringAllGather(const RingView& v, const void* in, void* out, size_t n, DType t, const Deadline& d) {
  int P = v.size(), r = v.me;
  size_t bytes = n * dtypeSize(t);
  uint8_t* o = static_cast<uint8_t*>(out);
  std::memmove(o + size_t(r) * bytes, in, bytes);
  for (int s = 0; s < P - 1; ++s) {
    size_t sp = size_t(mod(r - s, P)), rp = size_t(mod(r - s - 1, P));
    ringStepCopy(v, o + sp * bytes, bytes, o + rp * bytes, bytes, d);
  }
}

void ringAllGatherBlocks(const RingView& v, void* out, const std::vector<ByteBlock>& blocks, const Deadline& d) {
  int P = v.size(), r = v.me;
  uint8_t* o = static_cast<uint8_t*>(out);
  for (int s = 0; s < P - 1; ++s) {
    const ByteBlock& sb = blocks[size_t(mod(r - s, P))];
    const ByteBlock& rb = blocks[size_t(mod(r - s - 1, P))];
    ringStepCopy(v, o + sb.offset, sb.bytes, o + rb.offset, rb.bytes, d);
  }
}

void linearBroadcast(const RingView& v, void* buf, size_t bytes, int root, const Deadline& d) {
  std::vector<Xfer> xs;
  if (v.me == root) {
    for (int i = 0; i < v.size(); ++i)
      if (i != root) xs.push_back({v.channels[size_t(i)], true, static_cast<uint8_t*>(buf), bytes});
  } else {
    xs.push_back({v.channels[size_t(root)], false, static_cast<uint8_t*>(buf), bytes});
  }
  runTransfers(xs, d);
}

void ringBarrier(const RingView& v, const Deadline& d) {
  // A token around the ring twice: after the first lap everyone has arrived, the second tells everyone.
  uint8_t token = 1, got = 0;
  for (int lap = 0; lap < 2; ++lap) ringStepCopy(v, &token, 1, &got, 1, d);
}

}  // namespace dtrain
