#include "collectives/ring.h"

#include <algorithm>
#include <cstring>

#include "collectives/errors.h"
#include "collectives/reduce.h"
#include "half.h"

namespace dtrain {
namespace {

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
    Slice sp = sliceOf(count, P, mod(r - s, P)), rp = sliceOf(count, P, mod(r - s - 1, P));
    ringStepReduce(v, b + sp.begin * esz, sp.count * esz, b + rp.begin * esz, tmp.data(), rp.count * esz, t, op, d);
  }
}

void allGatherPhase(const RingView& v, uint8_t* b, size_t count, DType t, const Deadline& d) {
  int P = v.size(), r = v.me;
  size_t esz = dtypeSize(t);
  for (int s = 0; s < P - 1; ++s) {
    Slice sp = sliceOf(count, P, mod(r + 1 - s, P)), rp = sliceOf(count, P, mod(r - s, P));
    ringStepCopy(v, b + sp.begin * esz, sp.count * esz, b + rp.begin * esz, rp.count * esz, d);
  }
}

}  // namespace

void ringAllReduce(const RingView& v, void* buf, size_t count, DType t, RedOp op, const Deadline& d) {
  uint8_t* b = static_cast<uint8_t*>(buf);
  if (accumulateWide(t, op)) {
    std::vector<float> wide = widen(buf, count, t);
    reduceScatterPhase(v, reinterpret_cast<uint8_t*>(wide.data()), count, DType::f32, op, d);
    Slice own = sliceOf(count, v.size(), mod(v.me + 1, v.size()));
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

void ringBarrier(const RingView& v, const Deadline& d) {
  // A token around the ring twice: after the first lap everyone has arrived, the second tells everyone.
  uint8_t token = 1, got = 0;
  for (int lap = 0; lap < 2; ++lap) ringStepCopy(v, &token, 1, &got, 1, d);
}

}  // namespace dtrain
