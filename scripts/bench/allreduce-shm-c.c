/* The hardware's price of dtrain's small all-reduce, for scripts/bench/collectives.mjs: the same one-step
 * exchange over shared memory (each rank copies its input into its slot for the round's parity, publishes
 * the round, waits for the peer's, and sums both slots into its buffer in rank order) in plain C, with no
 * API, no checks, no sleeping and no timeouts. What dtrain's small all-reduce costs above this is its own
 * software; this program is not something to ship. Two processes (fork), unpinned as dtrain's ranks are,
 * timed op by op with clock_gettime as allreduce-mpi.c times OpenMPI. Rank 0 writes each size's latencies
 * (float64 ns) to <dir>/<bytes>.f64 and prints one JSON line per size with both ranks' CPU seconds.
 *   allreduce-shm-c <bytes,...> <ops,...> <warmup,...> <dir> */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include <unistd.h>
#include "bench-c.h"

struct Ctl {
  _Alignas(64) _Atomic uint64_t epoch[2][8]; /* by parity, one cache line each */
  _Alignas(64) _Atomic uint64_t arrived;     /* a barrier between sizes */
  _Alignas(64) double cpu_s;                 /* rank 1's CPU seconds for the size, for rank 0's line */
};

static void spin_until(_Atomic uint64_t* word, uint64_t target) {
  while (atomic_load_explicit(word, memory_order_acquire) < target) __builtin_ia32_pause();
}

/* both ranks call it equally often */
static void barrier(struct Ctl* mine, struct Ctl* peer) {
  uint64_t k = atomic_fetch_add(&mine->arrived, 1) + 1;
  spin_until(&peer->arrived, k);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: allreduce-shm-c <bytes,...> <ops,...> <warmup,...> <dir>\n");
    return 2;
  }
  long sizes[64], ops[64], warmups[64];
  int nsizes = parse_list(argv[1], sizes, 64);
  if (parse_list(argv[2], ops, 64) != nsizes || parse_list(argv[3], warmups, 64) != nsizes) {
    fprintf(stderr, "allreduce-shm-c: one op count and one warm-up count per size\n");
    return 2;
  }
  long most = 0;
  for (int s = 0; s < nsizes; s++) most = sizes[s] > most ? sizes[s] : most;
  size_t slot = ((size_t)most + 63) / 64 * 64;
  /* per rank: its control block, then two slots */
  size_t stride = sizeof(struct Ctl) + 2 * slot;
  uint8_t* shared = mmap(NULL, 2 * stride, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  pid_t child = fork();
  int me = child == 0 ? 1 : 0;
  struct Ctl* mine = (struct Ctl*)(shared + (size_t)me * stride);
  struct Ctl* peer = (struct Ctl*)(shared + (size_t)(1 - me) * stride);
  float* slots[2][2];
  for (int r = 0; r < 2; r++)
    for (int p = 0; p < 2; p++) slots[r][p] = (float*)(shared + (size_t)r * stride + sizeof(struct Ctl) + p * slot);
  uint64_t seq = 0;
  for (int s = 0; s < nsizes; s++) {
    long count = sizes[s] / 4 > 0 ? sizes[s] / 4 : 1;
    float* buf = aligned_alloc(64, ((size_t)count * sizeof(float) + 63) / 64 * 64);
    double* samples = malloc((size_t)ops[s] * sizeof(double));
    memset(samples, 0, (size_t)ops[s] * sizeof(double)); /* no page faults inside the timed loop */
    for (long i = 0; i < count; i++) buf[i] = 1.0f;
    double cpu0 = 0;
    for (long i = -warmups[s]; i < ops[s]; i++) {
      if (i == 0) {
        barrier(mine, peer);
        cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
      }
      double t0 = now_ns(CLOCK_MONOTONIC);
      int par = (int)(++seq & 1);
      memcpy(slots[me][par], buf, (size_t)count * sizeof(float));
      atomic_store_explicit(&mine->epoch[par][0], seq, memory_order_release);
      spin_until(&peer->epoch[par][0], seq);
      const float* a = slots[0][par];
      const float* b = slots[1][par];
      for (long k = 0; k < count; k++) buf[k] = a[k] + b[k];
      if (i >= 0) samples[i] = now_ns(CLOCK_MONOTONIC) - t0;
    }
    double cpu = (now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;
    /* rank 1's CPU time is read before either rank can start the next size, which needs both */
    mine->cpu_s = cpu;
    barrier(mine, peer);
    if (me == 0) {
      if (write_samples(argv[4], sizes[s], samples, ops[s]) != 0) return 1;
      printf("{\"bytes\": %ld, \"ops\": %ld, \"cpu_s\": %.9f, \"ranks\": 2}\n", sizes[s], ops[s], cpu + peer->cpu_s);
      fflush(stdout);
    }
    free(samples);
    free(buf);
  }
  if (child > 0) {
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  return 0;
}
