/*
 * dtrain-exec: the per-worker shepherd that makes "no orphans" hold whatever happens to its parent.
 *
 *   dtrain-exec <expected-parent-pid> <program> [args...]
 *
 * Why a separate tiny program: PR_SET_PDEATHSIG and setpgid must be applied between fork and exec,
 * which Node's spawn cannot do, and something must outlive the worker to sweep descendants that
 * left its process group (setsid) - the worker's own parent is the only process that inherits them.
 *
 * What it does:
 *  - becomes a child subreaper, so every orphaned descendant of the worker is reparented here;
 *  - asks for SIGRTMIN+1 when its parent (the agent) dies, and gives up at once if the parent is
 *    already gone (the pid in argv differs from getppid());
 *  - runs the program as its only child, in a new process group (pgid = worker pid);
 *  - forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 to that process group, each
 *    followed by SIGCONT so that a stopped worker acts on it;
 *  - SIGRTMIN+1 (sent by the agent after the grace period, or by the kernel when the agent dies)
 *    kills the group and every descendant with SIGKILL;
 *  - when the worker exits, kills whatever it left behind (group and descendants), reaps everything,
 *    then exits the way the worker did: same exit code, or the same signal (without a core file).
 * Descendants are found by walking /proc/<pid>/stat parent links from this process: by pid, never by name.
 * Status pipe (fd 3, when open; close-on-exec so the worker never holds it): "<worker pid>\n" once the
 * worker runs, then "done\n" once everything it left behind is gone. A shepherd that ends without
 * "done" was killed itself, and the agent sweeps its orphans.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 65536

static pid_t parent_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE* f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* comm may contain spaces and parentheses: the fields resume after the last ')' */
  char* p = strrchr(buf, ')');
  if (!p) return -1;
  char state;
  int ppid;
  if (sscanf(p + 1, " %c %d", &state, &ppid) != 2) return -1;
  return (pid_t)ppid;
}

/* SIGKILLs every live descendant of this process; returns how many it signalled. */
static int kill_descendants(void) {
  static pid_t pids[MAX_PROCS], ppids[MAX_PROCS];
  int n = 0;
  DIR* d = opendir("/proc");
  if (!d) return 0;
  struct dirent* e;
  while ((e = readdir(d)) && n < MAX_PROCS) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    pid_t pp = parent_of((pid_t)pid);
    if (pp < 0) continue;
    pids[n] = (pid_t)pid;
    ppids[n] = pp;
    n++;
  }
  closedir(d);
  /* mark descendants by repeated passes over the parent links (trees here are shallow) */
  static char mine[MAX_PROCS];
  memset(mine, 0, (size_t)n);
  pid_t self = getpid();
  int changed = 1, killed = 0;
  while (changed) {
    changed = 0;
    for (int i = 0; i < n; i++) {
      if (mine[i]) continue;
      int is = ppids[i] == self;
      for (int j = 0; !is && j < n; j++) is = mine[j] && pids[j] == ppids[i];
      if (is) mine[i] = 1, changed = 1;
    }
  }
  for (int i = 0; i < n; i++)
    if (mine[i] && kill(pids[i], SIGKILL) == 0) killed++;
  return killed;
}

static void exit_like(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_UNBLOCK, &all, NULL);
  raise(sig);
  _exit(128 + sig);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: dtrain-exec <parent-pid> <program> [args...]\n");
    return 2;
  }
  const int kill_all = SIGRTMIN + 1;
  const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  sigset_t waited, old;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, kill_all);
  for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaddset(&waited, forwarded[i]);
  sigprocmask(SIG_BLOCK, &waited, &old);

  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_PDEATHSIG, kill_all);
  if (getppid() != (pid_t)atol(argv[1])) return 125; /* the agent died before we could watch it */

  fcntl(3, F_SETFD, FD_CLOEXEC); /* the pid pipe must not stay open in the worker */
  pid_t worker = fork();
  if (worker < 0) {
    perror("dtrain-exec: fork");
    return 125;
  }
  if (worker == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &old, NULL);
    prctl(PR_SET_PDEATHSIG, 0);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "dtrain-exec: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  setpgid(worker, worker); /* both sides set it: no window where a signal to -worker misses */
  char line[32];
  int len = snprintf(line, sizeof line, "%d\n", (int)worker);
  int status_fd = write(3, line, (size_t)len) == len ? 3 : -1;

  int status = 0, worker_done = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      pid_t p;
      int st;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == worker) status = st, worker_done = 1;
      if (!worker_done) continue;
      /* The worker is gone: nothing it started may outlive it. Orphans are reparented here, so with
         no child left there is no descendant left either, and /proc need not be scanned. */
      for (;;) {
        p = waitpid(-1, &st, WNOHANG);
        if (p < 0 && errno == ECHILD) break;
        if (p > 0) continue;
        kill(-worker, SIGKILL);
        kill_descendants();
        p = waitpid(-1, &st, 0);
      }
      if (status_fd >= 0 && write(status_fd, "done\n", 5) != 5) status_fd = -1;
      exit_like(status);
    } else if (sig == kill_all) {
      kill(-worker, SIGKILL);
      kill_descendants();
    } else if (!worker_done) {
      kill(-worker, sig);
      /* a stopped worker would not act on it (only the SIGKILL at the grace's end would reach it): continue
         it, as a shell's kill of a stopped job does */
      kill(-worker, SIGCONT);
    }
  }
}
