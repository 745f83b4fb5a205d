#include "collectives/op_header.h"

#include <vector>

#include "collectives/dtype.h"
#include "collectives/errors.h"
#include "collectives/team.h"

namespace dtrain {

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

}  // namespace dtrain
