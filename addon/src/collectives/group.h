// A process group: its members, how they are spread over hosts (from DTRAIN_NODE_RANK only), the
// transport each op takes (self, shm, tcp, hierarchical) and per-op statistics. Construction is the
// rendezvous through the store; ops are blocking calls made from the engine.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "collectives/channel.h"
#include "collectives/dtype.h"
#include "collectives/flight_recorder.h"
#include "collectives/hierarchy.h"
#include "collectives/op_header.h"
#include "collectives/tcp_listener.h"
#include "collectives/team.h"
#include "store_client/store_client.h"

namespace dtrain {

struct Context {
  int rank = 0, worldSize = 1, nodeRank = 0;
  int64_t rendezvousTimeoutMs = 60000;
  int64_t collectiveTimeoutMs = 300000;
  std::unique_ptr<store::StoreClient> store;
  std::string socketIfname;                // DTRAIN_SOCKET_IFNAME (choosePeerAddress)
  std::string masterAddr;                  // MASTER_ADDR
  std::unique_ptr<TcpListener> listener;   // created when the first group spans hosts
  std::map<std::string, int> groupNames;   // member list → how many groups were made from it
  std::unique_ptr<FlightRecorder> flight;  // every group's ring of its last ops
  TcpListener& tcp();
};

// An op's place in its group's flight recorder: claimed on the JS thread when the op is called (queued:
// the progress thread marks it started when it runs). seq 0: not recorded.
struct FlightTicket {
  uint64_t seq = 0;
  bool queued = false;
};

struct OpStat {
  std::string op, transport, algorithm;
  uint64_t count = 0, bytes = 0;
};

class Group {
 public:
  Group(Context& ctx, const std::string& name, const std::vector<int>& ranks);
  ~Group();

  const std::string& name() const { return name_; }
  int rank() const { return me_; }
  int size() const { return int(ranks_.size()); }
  const char* kind() const { return kind_; }

  // On the JS thread, when the op is called: its seq in the group (the flight recorder's and the diagnosis').
  FlightTicket flightBegin(OpKind k, DType t, size_t count, size_t bytes, int root, bool queued) {
    return {flight_.begin(uint8_t(k), uint8_t(t), count, bytes, root, !queued), queued};
  }
  void allReduce(void* buf, size_t count, DType t, RedOp op, int64_t timeoutMs, FlightTicket ft = {});
  void reduceScatter(const void* in, void* out, size_t countPerRank, DType t, RedOp op, int64_t timeoutMs,
                     FlightTicket ft = {});
  void allGather(const void* in, void* out, size_t countPerRank, DType t, int64_t timeoutMs, FlightTicket ft = {});
  void broadcast(void* buf, size_t count, DType t, int root, int64_t timeoutMs, FlightTicket ft = {});
  void barrier(int64_t timeoutMs, FlightTicket ft = {});
  // Point to point runs as a state machine in the engine; these are its hooks into the group.
  Channel* p2pChannel(int peer, const char* op);
  void checkP2pHeader(const OpHeader& got, int peer, size_t count, DType t, int tag);
  void recordP2p(bool isSend, int peer, uint64_t bytes);
  // Poisons the group after a failed op (peers are told at once) and returns the message to reject with.
  std::string fail(const char* op, const std::string& what);
  Deadline deadline(int64_t timeoutMs) const;

  std::vector<OpStat> stats() const;

 private:
  template <typename F>
  void guarded(const char* op, FlightTicket ft, F&& body);
  void record(const char* op, const char* transport, const char* algorithm, uint64_t bytes);
  enum class Kind { self, shm, tcp, hierarchical };
  bool is(Kind k) const { return kindId_ == k; }
  OpHeader header(OpKind k, DType t, RedOp op, int root, size_t count);
  RingView allView();

  Context& ctx_;
  std::string name_;
  std::vector<int> ranks_, nodes_;
  int me_ = 0;
  const char* kind_ = "self";  // self | shm | tcp | hierarchical
  Kind kindId_ = Kind::self;
  std::unique_ptr<Team> team_;                      // the members on this host (whole group when kind is shm)
  std::vector<int> teamMembers_;                    // group ranks in the team
  int teamIndex(int groupRank) const;               // its place in this host's team (it must be on this host)
  std::vector<std::unique_ptr<Channel>> channels_;  // by group rank; shm or tcp by kind
  Hierarchy hier_;                                  // kind hierarchical: how the hosts are laid out
  uint64_t opSeq_ = 0;
  FlightRing flight_;
  std::mutex poisonMutex_;
  std::string poisoned_;
  std::atomic<bool> poisonedFlag_{false};  // poisoned_ is set: checked first, without the lock
  mutable std::mutex statsMutex_;
  std::map<std::tuple<std::string, std::string, std::string>, OpStat> stats_;
  struct StatRef {
    const char *op, *transport, *algorithm;
    OpStat* stat;
  };
  std::vector<StatRef> statCache_;  // by the literals' addresses
};

}  // namespace dtrain
