// dtrain-agent: the node agent in native code, for the nodes an SSH launch starts (src/launch/ssh). It
// keeps the contract of src/launch/agent-contract.ts to the letter (hello, spec, store keys, events,
// output records, exit codes) and behaves as `dtrain agent --stdio` does; what differs is the cost:
// a Node agent spends ~60 ms of CPU before its first worker runs, this one ~2 ms, paid once per host of
// every launch. The remote script (src/launch/ssh/remote-command.ts) runs it when it is built, and the
// Node agent otherwise.
//
//   dtrain-agent --stdio [--node <path of node>]
//
// `--node` is only used for the GPU probe (backend auto/nccl on a host whose driver library may load),
// which runs the TypeScript probe in a child process exactly as the Node agent does.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "json.h"
#include "loop.h"
#include "proxy.h"
#include "store_link.h"
#include "workers.h"

using namespace dtrain::agent;
namespace store = dtrain::store;

namespace {

constexpr int kExitStart = 3;
constexpr int kGetChunkMs = 30000;
constexpr size_t kStdoutHigh = 4u << 20;

[[noreturn]] void refuse(const std::string& message) {
  std::string line = "dtrain: " + message + "\n";
  (void)!write(2, line.data(), line.size());
  _exit(kExitStart);
}

std::string readFile(const std::string& path, bool& ok) {
  std::ifstream f(path, std::ios::binary);
  ok = bool(f);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string base64Decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;
    buf = (buf << 6) | unsigned(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buf >> bits) & 0xff);
    }
  }
  return out;
}

// As src/config/duration.ts writes a duration.
std::string formatDuration(long ms) {
  if (ms > 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms > 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

int signalNumber(const std::string& name) {
  static const std::map<std::string, int> n = {
      {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT}, {"SIGHUP", SIGHUP}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}};
  auto it = n.find(name);
  return it == n.end() ? 0 : it->second;
}

bool mkdirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), 0777) != 0 && errno != EEXIST) return false;
  }
  return true;
}

void removeTree(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string child = path + "/" + name;
      struct stat st;
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        removeTree(child);
      else
        unlink(child.c_str());
    }
    closedir(d);
  }
  rmdir(path.c_str());
}

std::string tmpDir() {
  const char* t = getenv("TMPDIR");
  std::string dir = t && *t ? t : "/tmp";
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// Proxy folders of launchers and agents that were SIGKILLed (their pid is gone): ours only.
void removeStaleProxyDirs(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    size_t at = name.rfind("dtrain-", 0) == 0 ? 7 : std::string::npos;
    if (at == std::string::npos) continue;
    if (name.compare(at, 6, "agent-") == 0) at += 6;
    size_t end = at;
    while (end < name.size() && isdigit(static_cast<unsigned char>(name[end]))) end++;
    if (end == at || end >= name.size() || name[end] != '-') continue;
    long pid = std::strtol(name.substr(at, end - at).c_str(), nullptr, 10);
    if (pid == getpid() || kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    struct stat st;
    std::string path = dir + "/" + name;
    if (lstat(path.c_str(), &st) == 0 && st.st_uid == getuid()) stale.push_back(path);
  }
  closedir(d);
  for (const auto& p : stale) removeTree(p);
}

// Binds `port` (0: any) on all interfaces, exclusively, and releases it. Returns the port, or -errno.
int probePort(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // As libuv binds (the Node agent's check) and as PyTorch's TCPStore will: a port whose last connections
  // sit in TIME_WAIT (the attempt before a restart) is free.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd, 1) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Whether dlopen("libcuda.so.1") could find the driver at all (src/launch/driver-library.ts, same rules).
bool driverLibraryMayLoad(const std::string& ldLibraryPath) {
  static const char* defaults[] = {"/lib",
                                   "/usr/lib",
                                   "/lib64",
                                   "/usr/lib64",
                                   "/lib/x86_64-linux-gnu",
                                   "/usr/lib/x86_64-linux-gnu",
                                   "/lib/aarch64-linux-gnu",
                                   "/usr/lib/aarch64-linux-gnu",
                                   "/usr/lib/wsl/lib",
                                   "/usr/local/nvidia/lib64",
                                   "/usr/local/nvidia/lib"};
  std::vector<std::string> dirs;
  size_t start = 0;
  while (start <= ldLibraryPath.size()) {
    size_t colon = ldLibraryPath.find(':', start);
    std::string d = ldLibraryPath.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!d.empty()) dirs.push_back(d);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  for (const char* d : defaults) dirs.push_back(d);
  for (const auto& d : dirs)
    if (exists(d + "/libcuda.so.1")) return true;
  bool ok;
  std::string cache = readFile("/etc/ld.so.cache", ok);
  if (!ok) return exists("/etc/ld.so.cache");
  return cache.find("libcuda.so.1") != std::string::npos;
}

struct RankSpec {
  int rank, localRank;
  std::string host;
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;
  std::string envValue(const std::string& name, bool& found) const {
    for (const auto& [k, v] : env)
      if (k == name) return found = true, v;
    return found = false, "";
  }
};

class Agent {
 public:
  Agent(std::string root, std::string nodePath) : root_(std::move(root)), nodePath_(std::move(nodePath)) {}
  int run();

 private:
  // start-up
  void readHelloAndSpec();
  void parseSpec(const Json& spec);
  void setUpSignals();
  // control
  void readCommand();
  void onCommand(const Json& cmd);
  void heartbeat();
  void emit(const std::string& json);
  void controllerGone(const std::string& why);
  void storeLost(const std::string& why);
  void finishIfDone();
  // attempts
  void start(int attempt);
  void begin(int attempt);
  void launch(int attempt);
  void stop(int attempt, int sig, int graceMs);
  void killAttempt(std::optional<int> attempt);
  void abortStart(int attempt);
  void next();
  void failStart(int attempt, const std::string& message);
  // probe and port
  void startProbe();
  void probeDone(const std::string& probeJson);
  std::string cpuProbe(const std::string& reason) const;
  void getForever(const std::string& key, std::function<void(const std::string&)> then);
  // I/O
  void onSignal();
  void reap();
  void onStdin();
  void relay(int rank, bool isStderr, const std::vector<std::string>& lines);
  void flushStdout();

  std::string root_, nodePath_, version_;
  Loop loop_;
  std::unique_ptr<StoreLink> store_;
  std::unique_ptr<StoreProxy> proxy_;
  std::string proxyDir_;
  int sigFd_ = -1;
  bool stdinOpen_ = true;
  std::string stdinRest_;

  // the spec
  std::string runId_, jobKey_, workdir_, masterAddr_, storeHost_, logsDir_;
  int storePort_ = 0, nodeRank_ = 0, masterPort_ = 0;  // masterPort_ 0: auto
  int hbIntervalMs_ = 5000, silentMs_ = 30000;
  bool logsAll_ = true, logsTee_ = true;
  std::set<int> logsRanks_;
  std::string visibleDevices_;
  bool hasVisibleDevices_ = false;
  std::string nodeJson_, nodeHost_;
  std::vector<RankSpec> ranks_;
  std::vector<std::string> baseEnv_;

  // control state
  int cmdSeq_ = 0, eventSeq_ = 0, eventsInFlight_ = 0;
  bool exitRequested_ = false, gone_ = false, stdoutPaused_ = false;
  int exitCode_ = 0;
  int64_t lastAnswer_ = 0;
  bool needsProbe_ = false;
  std::optional<std::string> backend_;  // the controller's decision
  std::vector<std::function<void()>> backendWaiters_;
  pid_t probePid_ = -1;
  int probeOut_ = -1;
  std::string probeText_;
  uint64_t probeTimer_ = 0;

  // attempts
  struct Attempt {
    int attempt;
    uint64_t serial;  // which Attempt object this is (callbacks outlive nothing: they check it)
    std::vector<std::unique_ptr<Worker>> workers;
    size_t readyCount = 0, doneCount = 0;
    bool started = false;  // the started event went out
    uint64_t killTimer = 0;
  };
  std::unique_ptr<Attempt> current_;
  void onAttemptProgress(uint64_t serial);
  uint64_t attemptSerial_ = 0;
  std::optional<int> starting_;    // an attempt waiting for its port and backend
  std::vector<int> queuedStarts_;  // starts that came while an attempt still ran
  struct PendingStop {
    bool kill;
    int sig, graceMs;
  };
  std::map<int, PendingStop> pendingStop_;
  std::set<int> aborted_;
  std::vector<std::unique_ptr<Worker>> retired_;
  std::map<int, int> masterPortOf_;
  std::string backendError_;
  std::string stdoutBuf_;
};

void Agent::readHelloAndSpec() {
  std::string buf;
  char chunk[65536];
  for (;;) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::string err;
      Json msg = Json::parse(line, err);
      if (!err.empty()) refuse("dtrain agent: stdin line is not JSON: " + quote(line.substr(0, 60)));
      const std::string type = msg["type"].isString() ? msg["type"].str() : "";
      if (type == "hello") {
        if (msg.has("kx"))
          refuse(
              "dtrain agent: the native agent does not do the key exchange of unencrypted channels; run the Node "
              "agent");
        char host[256] = {0};
        gethostname(host, sizeof host - 1);
        std::string answer = "{\"type\":\"hello\",\"version\":" + quote(version_) + ",\"hostname\":" + quote(host) +
                             ",\"pid\":" + num(getpid()) + "}\n";
        writeFully(1, answer);
        if (msg["version"].isString() && msg["version"].str() != version_)
          refuse("dtrain agent: the controller runs " + msg["version"].str() + ", this agent " + version_ +
                 ": not starting");
        continue;
      }
      if (type != "spec")
        refuse("dtrain agent: expected a spec message, got " + (msg.has("type") ? msg["type"].dump() : "undefined"));
      if (msg.has("job_key_sealed"))
        refuse("dtrain agent: the spec has a sealed job key but the hello had no key exchange");
      stdinRest_ = buf;
      parseSpec(msg);
      return;
    }
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) refuse("dtrain agent: stdin closed before the spec arrived");
    buf.append(chunk, size_t(r));
  }
}

void Agent::parseSpec(const Json& s) {
  auto need = [&](bool ok, const char* what) {
    if (!ok) refuse(std::string("dtrain agent: the spec's ") + what + " is missing or malformed");
  };
  need(s["run_id"].isString(), "run_id");
  runId_ = s["run_id"].str();
  const Json& node = s["node"];
  need(node.isObject() && node["node_rank"].isNumber(), "node");
  nodeRank_ = int(node["node_rank"].num());
  nodeJson_ = node.dump();
  nodeHost_ = node["host"].isString() ? node["host"].str() : "";
  if (node["cuda_visible_devices"].isString())
    visibleDevices_ = node["cuda_visible_devices"].str(), hasVisibleDevices_ = true;
  need(s["workdir"].isString(), "workdir");
  workdir_ = s["workdir"].str();
  const Json& master = s["master"];
  need(master.isObject() && master["addr"].isString(), "master");
  masterAddr_ = master["addr"].str();
  masterPort_ = master["port"].isNumber() ? int(master["port"].num()) : 0;
  const Json& st = s["store"];
  need(st.isObject(), "store");
  if (!st["kind"].isString() || st["kind"].str() != "tcp")
    refuse("dtrain agent: the native agent reaches its store over TCP only (store kind " + st["kind"].dump() + ")");
  need(st["host"].isString() && st["port"].isNumber(), "store address");
  storeHost_ = st["host"].str();
  storePort_ = int(st["port"].num());
  need(s["job_key"].isString(), "job_key");
  jobKey_ = base64Decode(s["job_key"].str());
  if (jobKey_.size() < 16) refuse("dtrain agent: the job key must be at least 16 bytes");
  need(s["heartbeat_interval_ms"].isNumber(), "heartbeat_interval_ms");
  hbIntervalMs_ = std::max(1, int(s["heartbeat_interval_ms"].num()));
  silentMs_ =
      s["heartbeat_timeout_ms"].isNumber() ? int(s["heartbeat_timeout_ms"].num()) : std::max(10000, 6 * hbIntervalMs_);
  const Json& logs = s["logs"];
  need(logs.isObject() && logs["dir"].isString(), "logs");
  logsDir_ = logs["dir"].str();
  logsTee_ = !logs["tee"].isBool() || logs["tee"].boolean();
  if (logs["ranks"].isArray()) {
    logsAll_ = false;
    for (const auto& r : logs["ranks"].items()) logsRanks_.insert(int(r.num()));
  }
  need(s["ranks"].isArray(), "ranks");
  for (const auto& r : s["ranks"].items()) {
    need(r["rank"].isNumber() && r["local_rank"].isNumber() && r["command"].isArray() && r["env"].isObject(), "ranks");
    RankSpec rs{int(r["rank"].num()), int(r["local_rank"].num()), r["host"].isString() ? r["host"].str() : "", {}, {}};
    for (const auto& c : r["command"].items()) {
      need(c.isString(), "command");
      rs.command.push_back(c.str());
    }
    need(!rs.command.empty(), "command");
    for (const auto& [k, v] : r["env"].members()) rs.env.emplace_back(k, v.isString() ? v.str() : v.dump());
    ranks_.push_back(std::move(rs));
  }
  bool found = false;
  std::string requested = ranks_.empty() ? "cpu" : ranks_[0].envValue("DTRAIN_BACKEND", found);
  if (!found) requested = "cpu";
  needsProbe_ = requested == "auto" || requested == "nccl";
  if (!ranks_.empty()) {
    std::string v = ranks_[0].envValue("CUDA_VISIBLE_DEVICES", found);
    if (found) visibleDevices_ = v, hasVisibleDevices_ = true;
  }
}

void Agent::setUpSignals() {
  // A controller that dies without closing our stdin (SIGKILLed parent on this machine) still takes us down.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  sigFd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  loop_.watch(sigFd_, POLLIN, [this](short) { onSignal(); });
}

int Agent::run() {
  bool ok;
  std::string pkg = readFile(root_ + "/package.json", ok), err;
  Json pj = Json::parse(pkg, err);
  if (!ok || !pj["version"].isString()) refuse("dtrain agent: cannot read " + root_ + "/package.json");
  version_ = pj["version"].str();
  setUpSignals();
  readHelloAndSpec();
  for (char** e = environ; *e; e++)
    if (strncmp(*e, "DTRAIN_JOB_KEY", 14) != 0 && strncmp(*e, "DTRAIN_SECRET", 13) != 0) baseEnv_.push_back(*e);

  store_ = std::make_unique<StoreLink>(loop_);
  if (!store_->open(storeHost_, storePort_, jobKey_, 10000, err)) refuse(err);
  store_->onLost = [this](const std::string& why) { storeLost(why); };
  removeStaleProxyDirs(tmpDir());
  std::string tmpl = tmpDir() + "/dtrain-agent-" + std::to_string(getpid()) + "-XXXXXX";
  std::vector<char> path(tmpl.begin(), tmpl.end());
  path.push_back('\0');
  if (!mkdtemp(path.data())) refuse("store proxy: cannot create a folder under " + tmpDir() + ": " + strerror(errno));
  proxyDir_ = path.data();
  proxy_ = std::make_unique<StoreProxy>(loop_, *store_, jobKey_);
  if (!proxy_->listen(proxyDir_, err)) {
    removeTree(proxyDir_);
    refuse(err);
  }
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  loop_.watch(0, POLLIN, [this](short) { onStdin(); });
  if (needsProbe_) startProbe();
  lastAnswer_ = nowMs();
  loop_.after(hbIntervalMs_, [this] { heartbeat(); });
  readCommand();
  while (!(exitRequested_ || gone_) || current_ || starting_ || !queuedStarts_.empty() ||
         (!gone_ && eventsInFlight_ > 0)) {
    loop_.once();
  }
  // With the controller gone nobody reads our output either; otherwise it gets all of it.
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) & ~O_NONBLOCK);
  if (!gone_) writeFully(1, stdoutBuf_);
  proxy_->close();
  store_->close();
  removeTree(proxyDir_);
  if (probePid_ > 0) kill(-probePid_, SIGKILL);
  return exitCode_;
}

void Agent::getForever(const std::string& key, std::function<void(const std::string&)> then) {
  store_->send(store::kGet, {key, std::to_string(kGetChunkMs)}, [this, key, then](const Message& res, bool lost) {
    if (lost || gone_) return;
    if (res.code == store::kOk && !res.args.empty()) return then(res.args[0]);
    if (res.code == store::kTimeout || res.code == store::kNotFound) return getForever(key, then);
    storeLost("GET " + key + ": " + store::statusName(res.code));
  });
}

void Agent::readCommand() {
  const std::string key = "ctl/cmd/" + std::to_string(nodeRank_) + "/" + std::to_string(cmdSeq_);
  getForever(key, [this, key](const std::string& raw) {
    std::string err;
    Json cmd = Json::parse(raw, err);
    if (!err.empty()) return storeLost(key + " is not JSON");
    cmdSeq_++;
    onCommand(cmd);
    if (!exitRequested_ && !gone_) readCommand();
  });
}

void Agent::onCommand(const Json& cmd) {
  const std::string type = cmd["type"].isString() ? cmd["type"].str() : "";
  int attempt = int(cmd["attempt"].num());
  if (type == "start")
    start(attempt);
  else if (type == "stop")
    stop(attempt, signalNumber(cmd["signal"].str()), int(cmd["grace_ms"].num()));
  else if (type == "kill")
    killAttempt(attempt);
  else if (type == "signal") {
    int sig = signalNumber(cmd["signal"].str());
    if (current_ && sig)
      for (auto& w : current_->workers) w->signal(sig);
  } else if (type == "exit") {
    exitRequested_ = true;
    // Nothing will start now: an attempt still waiting for its port or backend must not hold the exit.
    queuedStarts_.clear();
    if (starting_) abortStart(*starting_);
  }
}

void Agent::heartbeat() {
  if (gone_) return;
  if (nowMs() - lastAnswer_ > silentMs_) {
    std::string line = "dtrain agent: the controller (its store at " + storeHost_ + ":" + std::to_string(storePort_) +
                       ") has not answered for " + formatDuration(silentMs_) + ": stopping this node\n";
    (void)!write(2, line.data(), line.size());
    return controllerGone("silent");
  }
  store_->send(store::kAdd, {"ctl/hb/" + std::to_string(nodeRank_), "1"}, [this](const Message&, bool lost) {
    if (!lost) lastAnswer_ = nowMs();
  });
  loop_.after(hbIntervalMs_, [this] { heartbeat(); });
}

// Events keep their order: one connection, requests answered in the order sent, one sequence per node.
void Agent::emit(const std::string& json) {
  const std::string key = "ctl/event/" + std::to_string(nodeRank_) + "/" + std::to_string(eventSeq_++);
  eventsInFlight_++;
  store_->send(store::kSet, {key, json}, [this](const Message&, bool lost) {
    eventsInFlight_--;
    if (lost && !gone_) {
      std::string line = "dtrain agent: cannot report to the controller: the store connection is gone\n";
      (void)!write(2, line.data(), line.size());
    }
  });
}

void Agent::controllerGone(const std::string&) {
  if (gone_) return;
  gone_ = true;
  exitCode_ = 1;
  killAttempt(std::nullopt);
  queuedStarts_.clear();
  // Nobody reads our output now: drop what waits, and let paused workers' pipes drain to their end.
  stdoutBuf_.clear();
  flushStdout();
}

void Agent::storeLost(const std::string& why) {
  if (gone_) return;
  std::string line = "dtrain agent: lost the store: " + why + "\n";
  (void)!write(2, line.data(), line.size());
  // Without the store there is nothing to serve: workers see their store socket close at once.
  if (proxy_) proxy_->close();
  controllerGone(why);
}

void Agent::start(int attempt) {
  if (current_ || starting_) {
    queuedStarts_.push_back(attempt);
    return;
  }
  begin(attempt);
}

void Agent::begin(int attempt) {
  starting_ = attempt;
  auto afterPort = [this, attempt](int port) {
    if (aborted_.count(attempt)) return;
    masterPortOf_[attempt] = port;
    auto go = [this, attempt] {
      if (!aborted_.count(attempt)) launch(attempt);
    };
    if (!needsProbe_ || backend_)
      go();
    else
      backendWaiters_.push_back(go);
  };
  // A stop that came while this start waited behind the previous attempt applies once the workers run
  // (launch), as in the Node agent; one that comes while the port or backend is awaited aborts the start.
  if (masterPort_ != 0) {
    if (nodeRank_ == 0) {
      int r = probePort(masterPort_);
      if (r < 0) {
        std::string why = r == -EADDRINUSE ? "is already in use"
                          : r == -EACCES   ? "needs privileges"
                                           : "cannot be bound (" + std::string(strerror(-r)) + ")";
        return failStart(attempt, "master.port: port " + std::to_string(masterPort_) + " " + why +
                                      "; pick another or set master.port: auto");
      }
    }
    return afterPort(masterPort_);
  }
  const std::string key = "ctl/a" + std::to_string(attempt) + "/master_port";
  if (nodeRank_ != 0) return getForever(key, [afterPort](const std::string& v) { afterPort(std::atoi(v.c_str())); });
  int port = probePort(0);
  store_->send(store::kSet, {key, std::to_string(port)}, [afterPort, port](const Message&, bool lost) {
    if (!lost) afterPort(port);
  });
}

void Agent::failStart(int attempt, const std::string& message) {
  if (starting_ == attempt) starting_.reset();
  emit("{\"type\":\"error\",\"node_rank\":" + num(nodeRank_) + ",\"attempt\":" + num(attempt) +
       ",\"message\":" + quote(message) + "}");
  next();
}

void Agent::abortStart(int attempt) {
  aborted_.insert(attempt);
  failStart(attempt, "stopped before its workers started");
}

void Agent::next() {
  if (current_ || starting_ || queuedStarts_.empty() || gone_) return;
  int attempt = queuedStarts_.front();
  queuedStarts_.erase(queuedStarts_.begin());
  begin(attempt);
}

void Agent::launch(int attempt) {
  starting_.reset();
  if (!backendError_.empty()) return failStart(attempt, backendError_);
  const std::string logDir = logsDir_ + "/" + runId_ + "/attempt_" + std::to_string(attempt);
  if (!mkdirs(logDir)) return failStart(attempt, "cannot create " + logDir + ": " + strerror(errno));
  proxy_->setAttempt(attempt);
  const std::string storeAddress = "unix:" + proxy_->socketPath();
  const std::string wrapper = root_ + "/build/Release/dtrain-exec";
  const int port = masterPortOf_[attempt];
  current_ = std::make_unique<Attempt>();
  current_->attempt = attempt;
  current_->serial = ++attemptSerial_;
  const uint64_t serial = current_->serial;
  auto exits = std::make_shared<std::vector<std::string>>();  // held back until `started` is out
  for (const auto& r : ranks_) {
    std::vector<std::pair<std::string, std::string>> env;
    std::map<std::string, size_t> at;
    auto put = [&](const std::string& k, const std::string& v) {
      auto it = at.find(k);
      if (it != at.end())
        env[it->second].second = v;
      else
        at[k] = env.size(), env.emplace_back(k, v);
    };
    auto get = [&](const std::string& k, bool& found) -> std::string {
      auto it = at.find(k);
      found = it != at.end();
      return found ? env[it->second].second : "";
    };
    for (const auto& kv : baseEnv_) {
      size_t eq = kv.find('=');
      if (eq != std::string::npos) put(kv.substr(0, eq), kv.substr(eq + 1));
    }
    bool found;
    std::string planPort = r.envValue("MASTER_PORT", found);
    bool autoPort = !found || planPort == "auto";
    for (const auto& [k, v] : r.env) put(k, v);
    const std::string prefix = logDir + "/rank_" + std::to_string(r.rank);
    if (autoPort) put("MASTER_PORT", std::to_string(port));
    put("TORCHELASTIC_RESTART_COUNT", std::to_string(attempt));
    put("TORCHELASTIC_ERROR_FILE", prefix + ".error.json");
    if (backend_) put("DTRAIN_BACKEND", *backend_);
    std::string v = get("DTRAIN_STORE", found);
    if (!found || v == "auto") put("DTRAIN_STORE", storeAddress);
    for (const char* k : {"TORCHELASTIC_RUN_ID", "DTRAIN_RUN_ID"})
      if (get(k, found) == "auto" && found) put(k, runId_);
    if (get("MASTER_ADDR", found) == "auto" && found) put("MASTER_ADDR", masterAddr_);
    WorkerSpec ws;
    ws.rank = r.rank;
    ws.localRank = r.localRank;
    ws.host = r.host;
    ws.command = r.command;
    for (const auto& [k, val] : env) ws.env.push_back(k + "=" + val);
    ws.cwd = workdir_;
    ws.outLog = prefix + ".out";
    ws.errLog = prefix + ".err";
    ws.errorFile = prefix + ".error.json";
    ws.shown = logsTee_ && (logsAll_ || logsRanks_.count(r.rank));
    auto onReady = [this, serial, attempt, port, exits] {
      if (!current_ || current_->serial != serial) return;
      Attempt* a = current_.get();
      if (++a->readyCount < a->workers.size()) return;
      auto pending = pendingStop_.find(attempt);
      if (pending != pendingStop_.end()) {
        if (pending->second.kill)
          killAttempt(attempt);
        else
          stop(attempt, pending->second.sig, pending->second.graceMs);
      }
      std::string workers;
      for (size_t i = 0; i < a->workers.size(); i++)
        workers += std::string(i ? "," : "") + "{\"rank\":" + num(ranks_[i].rank) +
                   ",\"local_rank\":" + num(ranks_[i].localRank) + ",\"pid\":" + num(a->workers[i]->pid()) + "}";
      emit("{\"type\":\"started\",\"node_rank\":" + num(nodeRank_) + ",\"attempt\":" + num(attempt) +
           ",\"master_port\":" + num(port) + ",\"workers\":[" + workers + "]}");
      a->started = true;
      for (const auto& e : *exits) emit(e);
      exits->clear();
      // Workers that ended before every one was running: the attempt may be complete already.
      loop_.after(0, [this, serial] { onAttemptProgress(serial); });
    };
    auto onDone = [this, serial, attempt, exits](const WorkerExitInfo& x) {
      if (!current_ || current_->serial != serial) return;
      Attempt* a = current_.get();
      std::string tail;
      for (size_t i = 0; i < x.stderrTail.size(); i++) tail += std::string(i ? "," : "") + quote(x.stderrTail[i]);
      std::string ev = "{\"type\":\"exit\",\"node_rank\":" + num(nodeRank_) + ",\"attempt\":" + num(attempt) +
                       ",\"rank\":" + num(x.rank) + ",\"local_rank\":" + num(x.localRank) +
                       ",\"host\":" + quote(x.host) + ",\"pid\":" + num(x.pid) +
                       ",\"exit_code\":" + (x.exitCode < 0 ? "null" : num(x.exitCode)) +
                       ",\"signal\":" + (x.signal.empty() ? "null" : quote(x.signal)) + ",\"time\":" + quote(x.time) +
                       ",\"stderr_tail\":[" + tail + "],\"error_file\":" + x.errorFileJson + "}";
      if (a->started)
        emit(ev);
      else
        exits->push_back(ev);
      loop_.after(0, [this, serial] { onAttemptProgress(serial); });
    };
    current_->workers.push_back(std::make_unique<Worker>(
        loop_, std::move(ws), wrapper,
        [this](int rank, bool isStderr, const std::vector<std::string>& lines) { relay(rank, isStderr, lines); },
        onReady, onDone));
    if (stdoutPaused_) current_->workers.back()->setPaused(true);
  }
}

void Agent::onAttemptProgress(uint64_t serial) {
  if (!current_ || current_->serial != serial || !current_->started) return;
  Attempt* a = current_.get();
  for (const auto& w : a->workers)
    if (!w->finished()) return;
  if (a->killTimer) loop_.cancel(a->killTimer);
  bool unclean = false;
  for (const auto& w : a->workers) unclean = unclean || !w->cleanExit();
  // A shepherd killed itself (not by us) leaves orphans; they came here (subreaper): end them by pid.
  if (unclean) sweepDescendants(probePid_ > 0 ? std::vector<pid_t>{probePid_} : std::vector<pid_t>{});
  current_.reset();
  next();
}

void Agent::stop(int attempt, int sig, int graceMs) {
  if (!current_ || current_->attempt != attempt) {
    pendingStop_[attempt] = PendingStop{false, sig, graceMs};
    if (starting_ == attempt) abortStart(attempt);
    return;
  }
  if (sig)
    for (auto& w : current_->workers) w->signal(sig);
  if (current_->killTimer) loop_.cancel(current_->killTimer);
  current_->killTimer = loop_.after(graceMs, [this, attempt] {
    if (current_) current_->killTimer = 0;
    killAttempt(attempt);
  });
}

void Agent::killAttempt(std::optional<int> attempt) {
  if (current_ && (!attempt || current_->attempt == *attempt)) {
    for (auto& w : current_->workers) w->killAll();
    return;
  }
  if (attempt) {
    pendingStop_[*attempt] = PendingStop{true, 0, 0};
    if (starting_ == *attempt) abortStart(*attempt);
  } else if (starting_) {
    abortStart(*starting_);
  }
}

// A NodeProbe (backend.ts) for a node that can only run the CPU backend, and why.
std::string Agent::cpuProbe(const std::string& reason) const {
  return "{\"node_rank\":" + num(nodeRank_) + ",\"host\":" + quote(nodeHost_) +
         ",\"backend\":\"cpu\",\"reason\":" + quote(reason) + ",\"gpus\":0}";
}

void Agent::startProbe() {
  auto cpu = [this](const std::string& reason) { probeDone(cpuProbe(reason)); };
  bool ok;
  std::string manifest = readFile(root_ + "/build-cuda/cuda-build.json", ok), err;
  if (!ok) return cpu("CUDA part not built (the addon was not built with the CUDA step)");
  Json info = Json::parse(manifest, err);
  if (!info["built"].isBool() || !info["built"].boolean())
    return cpu("CUDA part not built (" + (info["reason"].isString() ? info["reason"].str() : std::string("not built")) +
               ")");
  const std::string part = root_ + "/build-cuda/libdtrain_cuda.so";
  if (!exists(part)) return cpu("CUDA part not built (" + part + " is missing)");
  const char* ld = getenv("LD_LIBRARY_PATH");
  if (!driverLibraryMayLoad(ld ? ld : "")) return cpu("no NVIDIA driver (libcuda.so.1 not found)");
  // The driver may load: the real probe, in a child process (a broken driver must not take the agent down).
  std::string input = "{\"node\":" + nodeJson_ + ",\"ranks\":[";
  for (size_t i = 0; i < ranks_.size(); i++) {
    bool found;
    std::string v = ranks_[i].envValue("CUDA_VISIBLE_DEVICES", found);
    input += std::string(i ? "," : "") + "{\"env\":{" + (found ? "\"CUDA_VISIBLE_DEVICES\":" + quote(v) : "") + "}}";
  }
  input += "]}";
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
    return cpu(std::string("the CUDA probe failed: ") + strerror(errno));
  const std::string node = nodePath_.empty() ? "node" : nodePath_;
  const std::string script = root_ + "/dist/launch/probe-node-main.js";
  pid_t pid = fork();
  if (pid == 0) {
    // Its own process group: a probe that hangs is killed with whatever it started.
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    execlp(node.c_str(), node.c_str(), script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    return cpu(std::string("the CUDA probe failed: ") + strerror(errno));
  }
  writeFully(in[1], input);
  close(in[1]);
  probePid_ = pid;
  probeOut_ = out[0];
  fcntl(probeOut_, F_SETFL, O_NONBLOCK);
  loop_.watch(probeOut_, POLLIN, [this](short) {
    char buf[4096];
    ssize_t r = read(probeOut_, buf, sizeof buf);
    if (r > 0) return probeText_.append(buf, size_t(r)), void();
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    loop_.unwatch(probeOut_);
    close(probeOut_);
    probeOut_ = -1;
  });
  // The probe bounds its own CUDA child at 20 s; this is for a probe that hangs around it.
  probeTimer_ = loop_.after(25000, [this] {
    probeTimer_ = 0;
    if (probePid_ > 0) kill(-probePid_, SIGKILL);
  });
}

void Agent::probeDone(const std::string& probeJson) {
  const std::string key = "ctl/probe/" + std::to_string(nodeRank_);
  store_->send(store::kSet, {key, probeJson}, [this](const Message&, bool lost) {
    if (lost) return;
    // Waited for from now on, not at the first `start`: the controller publishes it just before it starts
    // the workers, so the answer is here by then.
    getForever("ctl/backend", [this](const std::string& raw) {
      if (raw == "cpu" || raw == "nccl")
        backend_ = raw;
      else
        backendError_ = "the controller published backend " + quote(raw), backend_ = "";
      auto waiters = std::move(backendWaiters_);
      backendWaiters_.clear();
      for (auto& w : waiters) w();
    });
  });
}

void Agent::onSignal() {
  signalfd_siginfo info;
  while (read(sigFd_, &info, sizeof info) == sizeof info) {
    if (info.ssi_signo == SIGCHLD) reap();
    // SIGTERM: our parent died (PDEATHSIG) or someone stops us; SIGHUP: sshd ended the session. Either
    // way the controller is gone: kill the workers and clean up rather than die on the default action.
    else
      controllerGone("signal");
  }
}

void Agent::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == probePid_) {
      probePid_ = -1;
      if (probeTimer_) loop_.cancel(probeTimer_), probeTimer_ = 0;
      // Its output is complete: the pipe's end may still be unread in this round.
      while (probeOut_ >= 0) {
        char buf[4096];
        ssize_t r = read(probeOut_, buf, sizeof buf);
        if (r > 0)
          probeText_.append(buf, size_t(r));
        else if (r < 0 && errno == EINTR)
          continue;
        else {
          loop_.unwatch(probeOut_);
          close(probeOut_);
          probeOut_ = -1;
        }
      }
      std::string err;
      Json parsed = Json::parse(probeText_, err);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && err.empty() && parsed.isObject()) {
        probeDone(parsed.dump());
      } else {
        std::string why = WIFSIGNALED(status)
                              ? "the CUDA probe was killed by " + signalName(WTERMSIG(status))
                              : "the CUDA probe failed (exit " + std::to_string(WEXITSTATUS(status)) + ")";
        probeDone(cpuProbe(why));
      }
      continue;
    }
    if (current_)
      for (auto& w : current_->workers)
        if (w->shepherd() == pid) w->reaped(status);
  }
}

void Agent::onStdin() {
  char buf[4096];
  ssize_t r = read(0, buf, sizeof buf);
  if (r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN))) return;
  // stdin's end: the controller is gone.
  loop_.unwatch(0);
  stdinOpen_ = false;
  controllerGone("stdin");
}

void Agent::relay(int rank, bool isStderr, const std::vector<std::string>& lines) {
  if (gone_) return;
  std::string rec = "{\"type\":\"out\",\"rank\":" + num(rank) + ",\"stream\":\"" + (isStderr ? "stderr" : "stdout") +
                    "\",\"lines\":[";
  for (size_t i = 0; i < lines.size(); i++) rec += std::string(i ? "," : "") + quote(lines[i]);
  stdoutBuf_ += rec + "]}\n";
  flushStdout();
}

// The controller reads our stdout as fast as its console takes lines; while it does not, the workers'
// pipes are not read either, so they block in write() rather than this agent buffering without bound.
void Agent::flushStdout() {
  while (!stdoutBuf_.empty()) {
    ssize_t w = write(1, stdoutBuf_.data(), stdoutBuf_.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      stdoutBuf_.clear();  // the channel is gone; stdin's end says the rest
      break;
    }
    stdoutBuf_.erase(0, size_t(w));
  }
  bool full = stdoutBuf_.size() > kStdoutHigh;
  if (full != stdoutPaused_) {
    stdoutPaused_ = full;
    if (current_)
      for (auto& w : current_->workers) w->setPaused(full);
  }
  if (stdoutBuf_.empty())
    loop_.unwatch(1);
  else
    loop_.watch(1, POLLOUT, [this](short) { flushStdout(); });
}

}  // namespace

// Modification time in ns, or -1 when the file is not there.
int64_t mtimeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Whether this binary can stand in for the Node agent: built from the sources next to it (a checkout
// edited since, with only the TypeScript rebuilt, would run old contract code under the new version
// number) and with a current dtrain-exec (the Node agent rebuilds a stale one; this one cannot).
bool usable(const std::string& root, const std::string& self, std::string& why) {
  const int64_t built = mtimeOf(self);
  std::vector<std::string> sources{root + "/addon/src/collectives/sha256.cc", root + "/addon/src/collectives/sha256.h",
                                   root + "/addon/src/store_client/frame.cc", root + "/addon/src/store_client/frame.h"};
  if (DIR* d = opendir((root + "/addon/agent").c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') sources.push_back(root + "/addon/agent/" + e->d_name);
    closedir(d);
  }
  for (const auto& src : sources)
    if (mtimeOf(src) > built) return why = src + " is newer than " + self + " (npm run build:addon)", false;
  const std::string wrapper = root + "/build/Release/dtrain-exec";
  const int64_t wrapperBuilt = mtimeOf(wrapper);
  if (wrapperBuilt < 0) return why = wrapper + " is missing", false;
  if (mtimeOf(root + "/addon/src/process/exec-wrapper.c") > wrapperBuilt)
    return why = wrapper + " is older than its source", false;
  if (mtimeOf(root + "/package.json") < 0) return why = root + "/package.json is missing", false;
  return true;
}

int main(int argc, char** argv) {
  std::string nodePath;
  bool check = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--node" && i + 1 < argc)
      nodePath = argv[++i];
    else if (a == "--check")
      check = true;
    else if (a != "--stdio")
      refuse("dtrain-agent: unknown argument " + a + " (usage: dtrain-agent --stdio [--node <path>] | --check)");
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) refuse("dtrain-agent: cannot find its own path");
  std::string root(self, size_t(n));
  // <root>/build/Release/dtrain-agent
  const std::string exe = root;
  for (int up = 0; up < 3; up++) root = root.substr(0, root.rfind('/'));
  // The remote script asks first, and runs the Node agent when the answer is no (or this cannot run at all).
  if (check) {
    std::string why;
    if (usable(root, exe, why)) return 0;
    std::fprintf(stderr, "dtrain-agent: %s\n", why.c_str());
    return 1;
  }
  Agent agent(root, nodePath);
  return agent.run();
}
