#include "workers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "json.h"

namespace dtrain::agent {

namespace {
// The bounds of src/launch/agent-contract.ts (STDERR_TAIL_LINES, STDERR_TAIL_LINE_BYTES) and of
// src/launch/line-targets.ts (CONSOLE_LINE_BYTES), with the same cut notes (line-split.ts cutNote).
constexpr size_t kTailLines = 20;
constexpr size_t kTailLineBytes = 4096;
constexpr size_t kConsoleLineBytes = 16 * 1024;

std::string cutLine(const std::string& line, size_t maxBytes, const std::string& file) {
  if (line.size() <= maxBytes) return line;
  std::string note = "\xE2\x80\xA6 [cut: " + std::to_string(line.size()) + " bytes";
  if (!file.empty()) note += ", whole line in " + file;
  return line.substr(0, maxBytes) + note + "]";
}
constexpr size_t kMaxLine = 1u << 20;
constexpr int kKillAllSignal = 35;  // SIGRTMIN + 1 on Linux/glibc: dtrain-exec kills everything

pid_t parentOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::ifstream f(path);
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string state;
  long ppid = -1;
  rest >> state >> ppid;
  return pid_t(ppid);
}

std::map<pid_t, pid_t> processTable() {
  std::map<pid_t, pid_t> parents;
  DIR* d = opendir("/proc");
  if (!d) return parents;
  while (dirent* e = readdir(d)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    parents[pid_t(pid)] = parentOf(pid_t(pid));
  }
  closedir(d);
  return parents;
}

std::set<pid_t> descendantsIn(const std::map<pid_t, pid_t>& parents, pid_t root) {
  std::set<pid_t> mine{root};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ppid] : parents)
      if (!mine.count(pid) && mine.count(ppid)) mine.insert(pid), grew = true;
  }
  mine.erase(root);
  return mine;
}
}  // namespace

std::vector<pid_t> descendantsOf(pid_t root) {
  auto s = descendantsIn(processTable(), root);
  return {s.begin(), s.end()};
}

void sweepDescendants(const std::vector<pid_t>& keep) {
  auto parents = processTable();
  std::set<pid_t> spared;
  for (pid_t k : keep) {
    spared.insert(k);
    for (pid_t d : descendantsIn(parents, k)) spared.insert(d);
  }
  for (pid_t pid : descendantsIn(parents, getpid()))
    if (!spared.count(pid)) kill(pid, SIGKILL);
}

std::string signalName(int sig) {
  static const std::map<int, const char*> names = {
      {1, "SIGHUP"},   {2, "SIGINT"},     {3, "SIGQUIT"},  {4, "SIGILL"},     {5, "SIGTRAP"},  {6, "SIGABRT"},
      {7, "SIGBUS"},   {8, "SIGFPE"},     {9, "SIGKILL"},  {10, "SIGUSR1"},   {11, "SIGSEGV"}, {12, "SIGUSR2"},
      {13, "SIGPIPE"}, {14, "SIGALRM"},   {15, "SIGTERM"}, {16, "SIGSTKFLT"}, {17, "SIGCHLD"}, {18, "SIGCONT"},
      {19, "SIGSTOP"}, {20, "SIGTSTP"},   {21, "SIGTTIN"}, {22, "SIGTTOU"},   {23, "SIGURG"},  {24, "SIGXCPU"},
      {25, "SIGXFSZ"}, {26, "SIGVTALRM"}, {27, "SIGPROF"}, {28, "SIGWINCH"},  {29, "SIGIO"},   {30, "SIGPWR"},
      {31, "SIGSYS"}};
  auto it = names.find(sig);
  return it != names.end() ? it->second : "SIG" + std::to_string(sig);
}

std::string isoNow() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, int(tv.tv_usec / 1000));
  return buf;
}

Worker::Worker(Loop& loop, WorkerSpec spec, const std::string& wrapper, LineSink sink, std::function<void()> onReady,
               std::function<void(const WorkerExitInfo&)> onDone)
    : loop_(loop),
      spec_(std::move(spec)),
      sink_(std::move(sink)),
      onReady_(std::move(onReady)),
      onDone_(std::move(onDone)) {
  out_.log = open(spec_.outLog.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  err_.log = open(spec_.errLog.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  err_.isStderr = true;
  int outPipe[2] = {-1, -1}, errPipe[2] = {-1, -1}, statusPipe[2] = {-1, -1}, execPipe[2] = {-1, -1};
  if (pipe2(outPipe, O_CLOEXEC) || pipe2(errPipe, O_CLOEXEC) || pipe2(statusPipe, O_CLOEXEC) ||
      pipe2(execPipe, O_CLOEXEC)) {
    spawnError_ = std::string("dtrain: cannot start ") + wrapper + ": " + strerror(errno);
    for (int* p : {outPipe, errPipe, statusPipe, execPipe})
      for (int k = 0; k < 2; k++)
        if (p[k] >= 0) close(p[k]);
    reaped_ = true;
    waitStatus_ = 127 << 8;
    setReady();
    loop_.after(0, [this] { maybeFinish(); });
    return;
  }
  std::vector<std::string> args{wrapper, std::to_string(getpid())};
  args.insert(args.end(), spec_.command.begin(), spec_.command.end());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec_.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t child = fork();
  if (child == 0) {
    // What Node's spawn(detached) gives a child: its own session, default signal handling, nothing blocked.
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < 32; s++)
      if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(devnull, 0);
    dup2(outPipe[1], 1);
    dup2(errPipe[1], 2);
    dup2(statusPipe[1], 3);  // dup2 clears close-on-exec on the copy
    if (chdir(spec_.cwd.c_str()) == 0) execve(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!write(execPipe[1], &e, sizeof e);
    _exit(127);
  }
  close(outPipe[1]);
  close(errPipe[1]);
  close(statusPipe[1]);
  close(execPipe[1]);
  int childErrno = 0;
  if (child < 0) {
    childErrno = errno;
  } else {
    ssize_t r;
    do r = read(execPipe[0], &childErrno, sizeof childErrno);
    while (r < 0 && errno == EINTR);
    if (r != sizeof childErrno) childErrno = 0;
  }
  close(execPipe[0]);
  shepherd_ = child;
  pid_ = child;
  if (childErrno) {
    spawnError_ = std::string("dtrain: cannot start ") + wrapper + ": " + strerror(childErrno);
  }
  out_.fd = outPipe[0];
  err_.fd = errPipe[0];
  statusFd_ = statusPipe[0];
  for (int fd : {out_.fd, err_.fd, statusFd_}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  loop_.watch(out_.fd, POLLIN, [this](short) { onReadable(out_); });
  loop_.watch(err_.fd, POLLIN, [this](short) { onReadable(err_); });
  loop_.watch(statusFd_, POLLIN, [this](short) { onStatus(); });
  if (child < 0) {
    reaped_ = true;
    waitStatus_ = 127 << 8;
  }
}

Worker::~Worker() {
  for (Stream* s : {&out_, &err_}) {
    closeStream(*s);
    if (s->log >= 0) close(s->log);
  }
  if (statusFd_ >= 0) loop_.unwatch(statusFd_), close(statusFd_);
  if (closeTimer_) loop_.cancel(closeTimer_);
}

void Worker::signal(int sig) {
  if (!finished_ && !reaped_ && shepherd_ > 0) kill(shepherd_, sig);
}

void Worker::killAll() { signal(kKillAllSignal); }

void Worker::setPaused(bool paused) {
  paused_ = paused;
  for (Stream* s : {&out_, &err_})
    if (s->fd >= 0) loop_.setEvents(s->fd, paused ? 0 : POLLIN);
}

void Worker::onReadable(Stream& s) {
  char buf[65536];
  ssize_t r = read(s.fd, buf, sizeof buf);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    if (!s.carry.empty()) deliver(s, s.carry + "\n"), s.carry.clear();
    closeStream(s);
    maybeFinish();
    return;
  }
  std::string chunk(buf, size_t(r));
  size_t last = chunk.rfind('\n');
  if (last == std::string::npos) {
    s.carry += chunk;
    if (s.carry.size() >= kMaxLine) deliver(s, s.carry + "\n"), s.carry.clear();
    return;
  }
  std::string whole = s.carry + chunk.substr(0, last + 1);
  s.carry = chunk.substr(last + 1);
  deliver(s, whole);
}

void Worker::deliver(Stream& s, const std::string& block) {
  writeFully(s.log, block);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < block.size()) {
    size_t nl = block.find('\n', start);
    lines.push_back(block.substr(start, nl - start));
    start = nl + 1;
  }
  if (s.isStderr) {
    size_t from = lines.size() > kTailLines ? lines.size() - kTailLines : 0;
    for (size_t i = from; i < lines.size(); i++) tail_.push_back(cutLine(lines[i], kTailLineBytes, ""));
    while (tail_.size() > kTailLines) tail_.pop_front();
  }
  if (spec_.shown) {
    const std::string file = "rank_" + std::to_string(spec_.rank) + (s.isStderr ? ".err" : ".out");
    for (auto& line : lines) line = cutLine(line, kConsoleLineBytes, file);
    sink_(spec_.rank, s.isStderr, lines);
  }
}

void Worker::closeStream(Stream& s) {
  if (s.fd < 0) return;
  loop_.unwatch(s.fd);
  close(s.fd);
  s.fd = -1;
}

void Worker::onStatus() {
  char buf[256];
  ssize_t r = read(statusFd_, buf, sizeof buf);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    loop_.unwatch(statusFd_);
    close(statusFd_);
    statusFd_ = -1;
    setReady();
    maybeFinish();
    return;
  }
  status_.append(buf, size_t(r));
  long reported = std::strtol(status_.c_str(), nullptr, 10);
  if (reported > 0) pid_ = pid_t(reported);
  if (status_.size() >= 5 && status_.compare(status_.size() - 5, 5, "done\n") == 0) cleanExit_ = true;
  setReady();
}

void Worker::setReady() {
  if (ready_) return;
  ready_ = true;
  if (onReady_) loop_.after(0, onReady_);
}

void Worker::reaped(int status) {
  reaped_ = true;
  waitStatus_ = status;
  if (WIFSIGNALED(status)) {
    // The shepherd was killed (not by its worker's exit): what it ran now hangs off this agent (a
    // subreaper) and holds the output pipes. End it, then stop waiting on the pipes.
    if (pid_ != shepherd_ && pid_ > 0) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      for (pid_t d : descendantsOf(pid_)) kill(d, SIGKILL);
    }
    closeTimer_ = loop_.after(1000, [this] {
      closeTimer_ = 0;
      closeStream(out_);
      closeStream(err_);
      maybeFinish();
    });
  }
  setReady();
  maybeFinish();
}

void Worker::maybeFinish() {
  if (finished_ || !reaped_ || out_.fd >= 0 || err_.fd >= 0) return;
  finished_ = true;
  if (closeTimer_) loop_.cancel(closeTimer_), closeTimer_ = 0;
  WorkerExitInfo info;
  info.rank = spec_.rank;
  info.localRank = spec_.localRank;
  info.host = spec_.host;
  info.pid = pid_;
  int code = 0;
  info.exitCode = -1;
  if (!spawnError_.empty()) {
    tail_.push_back(spawnError_);
    info.exitCode = code = 127;
  } else if (WIFSIGNALED(waitStatus_)) {
    info.signal = signalName(WTERMSIG(waitStatus_));
  } else {
    info.exitCode = code = WEXITSTATUS(waitStatus_);
  }
  info.time = isoNow();
  info.stderrTail.assign(tail_.begin(), tail_.end());
  info.errorFileJson = "null";
  if (!spec_.errorFile.empty() && (code != 0 || !info.signal.empty())) {
    std::ifstream f(spec_.errorFile, std::ios::binary);
    if (f) {
      std::string text(65536, '\0');
      f.read(&text[0], 65536);
      text.resize(size_t(f.gcount()));
      std::string perr;
      Json parsed = Json::parse(text, perr);
      info.errorFileJson = perr.empty() ? parsed.dump() : quote(text);
    }
  }
  onDone_(info);
}

}  // namespace dtrain::agent
