// One node's worker processes (the native twin of src/launch/worker.ts): each runs under dtrain-exec in
// its own process group; its stdout and stderr are cut into whole lines for its log files and the
// agent's output records; its exit is reported with the last lines of its stderr and its error file.
#pragma once
#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loop.h"

namespace dtrain::agent {

struct WorkerSpec {
  int rank = 0;
  int localRank = 0;
  std::string host;
  std::vector<std::string> command;
  std::vector<std::string> env;  // NAME=value
  std::string cwd;
  std::string outLog, errLog, errorFile;
  bool shown = false;  // relayed to the controller as well as logged
};

struct WorkerExitInfo {
  int rank, localRank;
  std::string host;
  pid_t pid;
  int exitCode;  // -1: killed by a signal
  std::string signal;
  std::string time;
  std::vector<std::string> stderrTail;
  std::string errorFileJson;  // JSON text: the file's JSON, or its text as a string, or null
};

// Where relayed lines go: returns false when the consumer is full (stop reading pipes until resumed).
using LineSink = std::function<void(int rank, bool isStderr, const std::vector<std::string>& lines)>;

class Worker {
 public:
  Worker(Loop& loop, WorkerSpec spec, const std::string& wrapper, LineSink sink, std::function<void()> onReady,
         std::function<void(const WorkerExitInfo&)> onDone);
  ~Worker();
  pid_t shepherd() const { return shepherd_; }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }
  bool finished() const { return finished_; }
  bool cleanExit() const { return cleanExit_; }
  // The shepherd forwards it to the worker's process group.
  void signal(int sig);
  // SIGKILL for the worker and every descendant (the shepherd's SIGRTMIN+1).
  void killAll();
  // Called by the agent's SIGCHLD handling with the shepherd's wait status.
  void reaped(int status);
  // Reading the pipes stops while the agent's stdout is backed up, and resumes here.
  void setPaused(bool paused);

 private:
  struct Stream {
    int fd = -1;
    int log = -1;
    bool isStderr = false;
    std::string carry;
  };
  void onReadable(Stream& s);
  void deliver(Stream& s, const std::string& block);
  void closeStream(Stream& s);
  void onStatus();
  void maybeFinish();
  void setReady();

  Loop& loop_;
  WorkerSpec spec_;
  LineSink sink_;
  std::function<void()> onReady_;
  std::function<void(const WorkerExitInfo&)> onDone_;
  pid_t shepherd_ = -1, pid_ = -1;
  int statusFd_ = -1;
  std::string status_;
  Stream out_, err_;
  std::deque<std::string> tail_;
  bool ready_ = false, reaped_ = false, finished_ = false, cleanExit_ = false, paused_ = false;
  int waitStatus_ = 0;
  std::string spawnError_;
  uint64_t closeTimer_ = 0;
};

// Descendants of `root` from /proc parent links.
std::vector<pid_t> descendantsOf(pid_t root);
// SIGKILLs every descendant of this process that is not (under) one of `keep`: orphans of a killed shepherd.
void sweepDescendants(const std::vector<pid_t>& keep);
// "SIGSEGV" for 11, as Node names signals.
std::string signalName(int sig);
// Now as an ISO 8601 UTC time with milliseconds, as Date.toISOString writes it.
std::string isoNow();

}  // namespace dtrain::agent
