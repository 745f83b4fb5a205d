#include "collectives/group.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "collectives/errors.h"
#include "collectives/linear_broadcast.h"
#include "collectives/reduce.h"
#include "collectives/tcp_channel.h"

namespace dtrain {

TcpListener& Context::tcp() {
  if (!listener)
    listener = std::make_unique<TcpListener>(store->jobKey(), choosePeerAddress(socketIfname, masterAddr), rank);
  return *listener;
}

namespace {

std::map<std::string, std::string> parseInfo(const std::string& s) {
  std::map<std::string, std::string> m;
  std::istringstream in(s);
  std::string item;
  while (in >> item) {
    size_t eq = item.find('=');
    if (eq != std::string::npos) m[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return m;
}

std::string joinRanks(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? "," : "") + std::to_string(ranks[i]);
  return s;
}

}  // namespace

Group::Group(Context& ctx, const std::string& name, const std::vector<int>& ranks)
    : ctx_(ctx), name_(name), ranks_(ranks) {
  auto it = std::find(ranks_.begin(), ranks_.end(), ctx.rank);
  if (it == ranks_.end())
    throw CollectiveError("rank " + std::to_string(ctx.rank) + " is not a member of group " + name);
  me_ = int(it - ranks_.begin());
  if (ctx.flight) flight_ = ctx.flight->addGroup(name_, ranks_, me_);
  int n = size();
  nodes_.assign(size_t(n), ctx.nodeRank);
  if (n == 1) return;

  // The key names the member list and how many groups this process built from it before, so members
  // that create the same groups in the same order meet under the same keys.
  std::string members = joinRanks(ranks_);
  int ordinal = ctx.groupNames[members]++;
  std::string prefix = "dtrain/col/" + members + "#" + std::to_string(ordinal) + "/";
  int rdvMs = int(ctx.rendezvousTimeoutMs);
  Deadline setup = Deadline::in(rdvMs);

  // Round 1: where everyone lives. Round 2 (below): the shared memory and TCP endpoints.
  ctx.store->set(prefix + "node/" + std::to_string(me_), std::to_string(ctx.nodeRank));
  for (int i = 0; i < n; ++i)
    if (i != me_) nodes_[size_t(i)] = std::stoi(ctx.store->get(prefix + "node/" + std::to_string(i), setup.msLeft()));

  std::set<int> hosts(nodes_.begin(), nodes_.end());
  for (int i = 0; i < n; ++i)
    if (nodes_[size_t(i)] == ctx.nodeRank) teamMembers_.push_back(i);
  std::map<int, int> firstOnHost;
  for (int i = 0; i < n; ++i) firstOnHost.emplace(nodes_[size_t(i)], i);
  std::vector<int>& leaders = hier_.leaderRanks;
  for (auto& kv : firstOnHost) leaders.push_back(kv.second);
  std::sort(leaders.begin(), leaders.end());
  hier_.me = me_;
  hier_.size = n;
  hier_.isLeader = std::find(leaders.begin(), leaders.end(), me_) != leaders.end();
  hier_.hostOf.assign(size_t(n), -1);
  for (int leader : leaders) {
    std::vector<int> members;
    for (int i = 0; i < n; ++i)
      if (nodes_[size_t(i)] == nodes_[size_t(leader)]) {
        members.push_back(i);
        hier_.hostOf[size_t(i)] = int(hier_.hostMembers.size());
      }
    hier_.hostMembers.push_back(std::move(members));
  }
  const std::vector<std::vector<int>>& hostMembers = hier_.hostMembers;
  hier_.uniformHosts = std::all_of(hostMembers.begin(), hostMembers.end(),
                                   [&](const std::vector<int>& m) { return m.size() == hostMembers[0].size(); });
  // Leaders are sorted, so hosts whose members are consecutive group ranks are also in group order.
  hier_.contiguousHosts = true;
  for (size_t li = 0; li < hostMembers.size() && hier_.contiguousHosts; ++li)
    for (size_t j = 0; j < hostMembers[li].size(); ++j)
      if (hostMembers[li][j] != leaders[li] + int(j)) hier_.contiguousHosts = false;
  bool spansHosts = hosts.size() > 1;
  kind_ = !spansHosts ? "shm" : teamMembers_.size() == 1 && leaders.size() == size_t(n) ? "tcp" : "hierarchical";
  // with one rank on every host there is no team; otherwise the local members form one (maybe of 1)
  bool anyHostShared = leaders.size() < size_t(n);
  if (spansHosts && !anyHostShared) kind_ = "tcp";
  // DTRAIN_HIERARCHICAL=0: every op of a multi-host group on the flat TCP ring, same-host pairs over loopback
  // (a measuring aid: scripts/bench/hierarchical.sh times both in one run)
  const char* hierarchical = std::getenv("DTRAIN_HIERARCHICAL");
  bool forcedFlat = hierarchical && std::string(hierarchical) == "0";
  if (spansHosts && forcedFlat) kind_ = "tcp";
  kindId_ = !spansHosts ? Kind::shm : kind_ == std::string("tcp") ? Kind::tcp : Kind::hierarchical;

  std::string info = "pid=" + std::to_string(::getpid());
  int teamMe = int(std::find(teamMembers_.begin(), teamMembers_.end(), me_) - teamMembers_.begin());
  if (teamMembers_.size() > 1) {
    team_ = std::make_unique<Team>(int(teamMembers_.size()), teamMe, name_);
    info += " fd=" + std::to_string(team_->segmentFd());
  }
  if (spansHosts) info += " tcp=" + ctx.tcp().endpoint() + " flat=" + (forcedFlat ? "1" : "0");
  ctx.store->set(prefix + "info/" + std::to_string(me_), info);
  std::vector<std::map<std::string, std::string>> infos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    if (i != me_) infos[size_t(i)] = parseInfo(ctx.store->get(prefix + "info/" + std::to_string(i), setup.msLeft()));

  // Ranks that disagree on DTRAIN_HIERARCHICAL would run different sub-collectives and wait for each other
  // until collective_timeout: refuse the group at once instead, on every rank.
  if (spansHosts)
    for (int i = 0; i < n; ++i)
      if (i != me_ && infos[size_t(i)]["flat"] != (forcedFlat ? "1" : "0"))
        throw CollectiveError("group " + name_ + ": DTRAIN_HIERARCHICAL=0 is set on rank " +
                              std::to_string(ranks_[size_t(forcedFlat ? me_ : i)]) + " but not on rank " +
                              std::to_string(ranks_[size_t(forcedFlat ? i : me_)]) +
                              ": set it on every rank or on none");

  if (team_) {
    std::vector<TeamMemberInfo> tm;
    for (int gi : teamMembers_) {
      if (gi == me_)
        tm.push_back({ranks_[size_t(gi)], int(::getpid()), team_->segmentFd()});
      else
        tm.push_back({ranks_[size_t(gi)], std::stoi(infos[size_t(gi)]["pid"]), std::stoi(infos[size_t(gi)]["fd"])});
    }
    team_->attach(tm);
    hier_.team = team_.get();
  }

  channels_.resize(size_t(n));
  if (!spansHosts) {
    for (int i = 0; i < n; ++i)
      if (i != me_) channels_[size_t(i)] = team_->channelTo(i);
  } else {
    // Every pair gets a TCP connection for the generic algorithms and p2p; same-host pairs ride loopback.
    uint64_t gid = hashGroupId(prefix);
    for (int i = 0; i < me_; ++i)
      channels_[size_t(i)] = makeTcpChannel(
          ctx.tcp().connectPeer(infos[size_t(i)]["tcp"], gid, ctx.rank, ranks_[size_t(i)], setup), ranks_[size_t(i)]);
    for (int i = me_ + 1; i < n; ++i)
      channels_[size_t(i)] = makeTcpChannel(ctx.tcp().acceptPeer(gid, ranks_[size_t(i)], setup), ranks_[size_t(i)]);
    RingView& lv = hier_.leaders;
    lv.me = -1;
    lv.groupName = name_ + " (host leaders)";
    for (size_t li = 0; li < leaders.size(); ++li) {
      int gi = leaders[li];
      if (gi == me_) lv.me = int(li);
      lv.channels.push_back(gi == me_ ? nullptr : channels_[size_t(gi)].get());
      lv.globalRanks.push_back(ranks_[size_t(gi)]);
    }
    if (hier_.uniformHosts) {
      size_t j = size_t(teamIndex(me_));
      RingView& rv = hier_.rail;
      rv.groupName = name_ + " (rail " + std::to_string(j) + ")";
      for (size_t li = 0; li < hostMembers.size(); ++li) {
        int gi = hostMembers[li][j];
        if (gi == me_) rv.me = int(li);
        rv.channels.push_back(gi == me_ ? nullptr : channels_[size_t(gi)].get());
        rv.globalRanks.push_back(ranks_[size_t(gi)]);
      }
    }
  }
  // Nobody starts an op before everyone has mapped and connected.
  ctx.store->barrier(prefix + "ready", n, setup.msLeft() + 1);
}

Group::~Group() = default;

int Group::teamIndex(int groupRank) const {
  return int(std::find(teamMembers_.begin(), teamMembers_.end(), groupRank) - teamMembers_.begin());
}

Deadline Group::deadline(int64_t timeoutMs) const {
  return Deadline::in(timeoutMs > 0 ? timeoutMs : ctx_.collectiveTimeoutMs);
}

RingView Group::allView() {
  RingView v;
  v.me = me_;
  v.groupName = name_;
  v.globalRanks = ranks_;
  for (auto& c : channels_) v.channels.push_back(c.get());
  return v;
}

OpHeader Group::header(OpKind k, DType t, RedOp op, int root, size_t count) {
  return OpHeader{kHeaderMagic, uint32_t(k), uint8_t(t), uint8_t(op), 0, root, count, ++opSeq_};
}

void Group::record(const char* op, const char* transport, const char* algorithm, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(statsMutex_);
  // Names are string literals: a few pointer compares find the entry without building strings (this
  // runs on every op, the small inline all-reduce included).
  OpStat* s = nullptr;
  for (auto& c : statCache_)
    if (c.op == op && c.transport == transport && c.algorithm == algorithm) {
      s = c.stat;
      break;
    }
  if (!s) {
    s = &stats_[{op, transport, algorithm}];
    s->op = op;
    s->transport = transport;
    s->algorithm = algorithm;
    statCache_.push_back({op, transport, algorithm, s});
  }
  s->count += 1;
  s->bytes += bytes;
}

std::vector<OpStat> Group::stats() const {
  std::lock_guard<std::mutex> lock(statsMutex_);
  std::vector<OpStat> out;
  for (auto& kv : stats_) out.push_back(kv.second);
  return out;
}

template <typename F>
void Group::guarded(const char* op, FlightTicket ft, F&& body) {
  if (ft.seq && ft.queued) flight_.start(ft.seq);
  if (poisonedFlag_.load(std::memory_order_acquire)) {
    if (ft.seq) flight_.end(ft.seq, true);
    std::lock_guard<std::mutex> lock(poisonMutex_);
    throw CollectiveError(std::string(op) + " on group " + name_ + " refused: an earlier op failed (" + poisoned_ +
                          ")");
  }
  try {
    body();
  } catch (const std::exception& e) {
    // A timed-out op stays started in the recorder (flagged failed): the diagnosis reads it as waiting.
    if (ft.seq) flight_.end(ft.seq, true);
    // The peers are out of step now: tell them at once and refuse further ops on this group.
    throw CollectiveError(fail(op, e.what()));
  }
  if (ft.seq) flight_.end(ft.seq, false);
}

void Group::allReduce(void* buf, size_t count, DType t, RedOp op, int64_t timeoutMs, FlightTicket ft) {
  guarded("allReduce", ft, [&] {
    Deadline d = deadline(timeoutMs);
    size_t bytes = count * dtypeSize(t);
    int n = size();
    if (is(Kind::self)) {
      record("allReduce", "self", "none", bytes);
    } else if (is(Kind::shm)) {
      record("allReduce", "shm", team_->allReduce(buf, count, t, op, n, d), bytes);
    } else if (is(Kind::tcp)) {
      checkHeaders(allView(), header(OpKind::allReduce, t, op, 0, count), d);
      ringAllReduce(allView(), buf, count, t, op, d);
      if (op == RedOp::avg) scaleForAvg(buf, count, t, n);
      record("allReduce", "tcp", "ring", bytes);
    } else {
      checkHeaders(allView(), header(OpKind::allReduce, t, op, 0, count), d);
      hierarchicalAllReduce(hier_, buf, count, t, op == RedOp::avg ? RedOp::sum : op, d);
      if (op == RedOp::avg) scaleForAvg(buf, count, t, n);
      record("allReduce", "hierarchical", "shm-reduce+tcp-ring+shm-broadcast", bytes);
    }
  });
}

void Group::reduceScatter(const void* in, void* out, size_t n, DType t, RedOp op, int64_t timeoutMs, FlightTicket ft) {
  guarded("reduceScatter", ft, [&] {
    Deadline d = deadline(timeoutMs);
    size_t bytes = n * size_t(size()) * dtypeSize(t);
    if (is(Kind::self)) {
      if (in != out) std::memmove(out, in, n * dtypeSize(t));
      record("reduceScatter", "self", "copy", bytes);
    } else if (is(Kind::shm)) {
      record("reduceScatter", "shm", team_->reduceScatter(in, out, n, t, op, size(), d), bytes);
    } else if (is(Kind::hierarchical) && hier_.uniformHosts) {
      checkHeaders(allView(), header(OpKind::reduceScatter, t, op, 0, n), d);
      railReduceScatter(hier_, in, out, n, t, op == RedOp::avg ? RedOp::sum : op, d);
      if (op == RedOp::avg) scaleForAvg(out, n, t, size());
      record("reduceScatter", "hierarchical", "shm-reduce-scatter+tcp-rail-ring", bytes);
    } else {
      checkHeaders(allView(), header(OpKind::reduceScatter, t, op, 0, n), d);
      ringReduceScatter(allView(), in, out, n, t, op, d);
      if (op == RedOp::avg) scaleForAvg(out, n, t, size());
      record("reduceScatter", "tcp", "ring", bytes);
    }
  });
}

void Group::allGather(const void* in, void* out, size_t n, DType t, int64_t timeoutMs, FlightTicket ft) {
  guarded("allGather", ft, [&] {
    Deadline d = deadline(timeoutMs);
    size_t bytes = n * size_t(size()) * dtypeSize(t);
    if (is(Kind::self)) {
      if (in != out) std::memmove(out, in, n * dtypeSize(t));
      record("allGather", "self", "copy", bytes);
    } else if (is(Kind::shm)) {
      record("allGather", "shm", team_->allGather(in, out, n, t, d), bytes);
    } else if (is(Kind::hierarchical)) {
      checkHeaders(allView(), header(OpKind::allGather, t, RedOp::sum, 0, n), d);
      hierarchicalAllGather(hier_, in, out, n, t, d);
      record("allGather", "hierarchical", "shm-gather+tcp-ring+shm-broadcast", bytes);
    } else {
      checkHeaders(allView(), header(OpKind::allGather, t, RedOp::sum, 0, n), d);
      ringAllGather(allView(), in, out, n, t, d);
      record("allGather", "tcp", "ring", bytes);
    }
  });
}

void Group::broadcast(void* buf, size_t count, DType t, int root, int64_t timeoutMs, FlightTicket ft) {
  guarded("broadcast", ft, [&] {
    Deadline d = deadline(timeoutMs);
    size_t bytes = count * dtypeSize(t);
    if (is(Kind::self)) {
      record("broadcast", "self", "none", bytes);
    } else if (is(Kind::shm)) {
      record("broadcast", "shm", team_->broadcast(buf, count, t, root, d), bytes);
    } else if (is(Kind::hierarchical)) {
      checkHeaders(allView(), header(OpKind::broadcast, t, RedOp::sum, root, count), d);
      hierarchicalBroadcast(hier_, buf, count, t, root, d);
      record("broadcast", "hierarchical", "shm+tcp-linear+shm", bytes);
    } else {
      checkHeaders(allView(), header(OpKind::broadcast, t, RedOp::sum, root, count), d);
      linearBroadcast(allView(), buf, bytes, root, d);
      record("broadcast", "tcp", "linear", bytes);
    }
  });
}

void Group::barrier(int64_t timeoutMs, FlightTicket ft) {
  guarded("barrier", ft, [&] {
    Deadline d = deadline(timeoutMs);
    if (is(Kind::self)) {
      record("barrier", "self", "none", 0);
    } else if (is(Kind::shm)) {
      record("barrier", "shm", team_->barrier(d), 0);
    } else {
      checkHeaders(allView(), header(OpKind::barrier, DType::f32, RedOp::sum, 0, 0), d);
      ringBarrier(allView(), d);
      record("barrier", "tcp", "ring", 0);
    }
  });
}

Channel* Group::p2pChannel(int peer, const char* op) {
  {
    std::lock_guard<std::mutex> lock(poisonMutex_);
    if (!poisoned_.empty())
      throw CollectiveError(std::string(op) + " on group " + name_ + " refused: an earlier op failed (" + poisoned_ +
                            ")");
  }
  if (peer < 0 || peer >= size() || peer == me_)
    throw CollectiveError(std::string(op) + ": peer " + std::to_string(peer) + " is not another member of group " +
                          name_ + " (size " + std::to_string(size()) + ", this rank is " + std::to_string(me_) + ")");
  return channels_[size_t(peer)].get();
}

void Group::checkP2pHeader(const OpHeader& got, int peer, size_t count, DType t, int tag) {
  OpHeader want{kHeaderMagic, kP2p, uint8_t(t), 0, 0, tag, count, 0};
  if (got.magic != kHeaderMagic || got.kind != kP2p || got.dtype != want.dtype || got.count != count || got.root != tag)
    throw CollectiveError(
        "recv mismatch on group " + name_ + ": rank " + std::to_string(ranks_[size_t(peer)]) + " sent " +
        (got.magic == kHeaderMagic && got.kind == kP2p ? describeHeader(got) : std::string("something else")) +
        ", this rank expected " + describeHeader(want));
}

void Group::recordP2p(bool isSend, int peer, uint64_t bytes) {
  record(isSend ? "send" : "recv", channels_[size_t(peer)]->transportName(), "stream", bytes);
}

std::string Group::fail(const char* op, const std::string& what) {
  {
    std::lock_guard<std::mutex> lock(poisonMutex_);
    if (poisoned_.empty()) poisoned_ = what;
    poisonedFlag_.store(true, std::memory_order_release);
  }
  if (team_) team_->abort(what);
  for (auto& c : channels_)
    if (c) c->abort(what);
  return std::string(op) + " on group " + name_ + " (rank " + std::to_string(ctx_.rank) + "): " + what;
}

}  // namespace dtrain
