// The header every collective over channels starts with: each rank sends its own to every other rank
// and all compare the same table, so every rank names the same mismatch (op, dtype, size, order...).
#pragma once
#include <cstdint>
#include <string>

#include "collectives/transfer.h"

namespace dtrain {

struct OpHeader {
  uint32_t magic;
  uint32_t kind;  // OpKind, or kP2p
  uint8_t dtype, redop;
  uint16_t pad;
  int32_t root;  // broadcast root, or the p2p tag
  uint64_t count;
  uint64_t seq;  // per-group op number: catches ranks that skipped or reordered an op
};
constexpr uint32_t kHeaderMagic = 0x4454524e;  // "DTRN"
constexpr uint32_t kP2p = 100;

void checkHeaders(const RingView& v, const OpHeader& mine, const Deadline& d);
std::string describeHeader(const OpHeader& h);

}  // namespace dtrain
