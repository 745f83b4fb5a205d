"""mpi4py side of scripts/bench/collectives.mjs (OpenMPI through Python, beside the C reference
allreduce-mpi.c): all-reduce (sum, float32) timed op by op like the dtrain worker.
Run as: mpirun -np 2 /usr/bin/python3 scripts/bench/collectives-mpi.py <bytes,...> <ops,...> <warmup,...> <dir>
(warm-up ops per size: the driver's, from bench-stats' warmupFor)
Rank 0 writes each size's per-op latencies (float64 ns) to <dir>/<bytes>.f64 and prints one JSON line per
size with all ranks' CPU seconds; the driver summarises the samples (src/runtime/bench-stats.ts)."""
import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI


def main():
    comm = MPI.COMM_WORLD
    sizes = [int(s) for s in sys.argv[1].split(",")]
    ops = [int(s) for s in sys.argv[2].split(",")]
    warmups = [int(s) for s in sys.argv[3].split(",")]
    out = sys.argv[4]
    for nbytes, n_ops, n_warmup in zip(sizes, ops, warmups):
        count = max(1, nbytes // 4)
        send = np.ones(count, dtype=np.float32)
        recv = np.empty(count, dtype=np.float32)
        for _ in range(n_warmup):
            comm.Allreduce(send, recv, op=MPI.SUM)
        samples = np.empty(n_ops, dtype="<f8")
        samples.fill(0)  # no page faults inside the timed loop
        clock = time.perf_counter_ns
        comm.Barrier()
        cpu0 = time.process_time()
        for i in range(n_ops):
            t0 = clock()
            comm.Allreduce(send, recv, op=MPI.SUM)
            samples[i] = clock() - t0
        cpu = comm.reduce(time.process_time() - cpu0, op=MPI.SUM, root=0)
        if comm.Get_rank() == 0:
            samples.tofile(os.path.join(out, f"{nbytes}.f64"))
            print(json.dumps({"bytes": nbytes, "ops": n_ops, "cpu_s": cpu, "ranks": comm.Get_size()}), flush=True)


main()
