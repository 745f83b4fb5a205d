/* OpenMPI reference of scripts/bench/collectives.mjs, built there with mpicc at bench time: all-reduce
 * (sum, float32, in place) timed op by op with clock_gettime, as the dtrain bench worker times its ops.
 * Rank 0 writes each size's per-op latencies (little-endian float64 nanoseconds) to <dir>/<bytes>.f64 and
 * prints one JSON line per size with the CPU seconds of all ranks; the driver summarises the samples with
 * src/runtime/bench-stats.ts, the definition every bench uses.
 * Untimed warm-up ops per size come from the driver (bench-stats' warmupFor).
 *   mpirun -np 2 allreduce-mpi <bytes,...> <ops,...> <warmup,...> <dir> */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-c.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 5) {
    if (rank == 0) fprintf(stderr, "usage: allreduce-mpi <bytes,...> <ops,...> <warmup,...> <dir>\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  long sizes[64], ops[64], warmups[64];
  int nsizes = parse_list(argv[1], sizes, 64);
  if (parse_list(argv[2], ops, 64) != nsizes || parse_list(argv[3], warmups, 64) != nsizes) {
    if (rank == 0) fprintf(stderr, "allreduce-mpi: one op count and one warm-up count per size\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  for (int s = 0; s < nsizes; s++) {
    long count = sizes[s] / 4 > 0 ? sizes[s] / 4 : 1;
    float* buf = malloc((size_t)count * sizeof(float));
    double* samples = malloc((size_t)ops[s] * sizeof(double));
    memset(samples, 0, (size_t)ops[s] * sizeof(double)); /* no page faults inside the timed loop */
    for (long i = 0; i < count; i++) buf[i] = 1.0f;
    for (long i = 0; i < warmups[s]; i++)
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < ops[s]; i++) {
      double t0 = now_ns(CLOCK_MONOTONIC);
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      samples[i] = now_ns(CLOCK_MONOTONIC) - t0;
    }
    double cpu = (now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9, cpuAll = 0;
    MPI_Reduce(&cpu, &cpuAll, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      if (write_samples(argv[4], sizes[s], samples, ops[s]) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
      printf("{\"bytes\": %ld, \"ops\": %ld, \"cpu_s\": %.9f, \"ranks\": %d}\n", sizes[s], ops[s], cpuAll, size);
      fflush(stdout);
    }
    free(samples);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
