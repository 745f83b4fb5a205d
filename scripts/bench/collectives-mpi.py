"""OpenMPI side of scripts/bench/collectives.mjs: all-reduce (sum, float32) timed like the dtrain worker.
Run as: mpirun --allow-run-as-root -np 2 /usr/bin/python3 scripts/bench/collectives-mpi.py 4096,16777216 [chunks]
Prints one JSON line per size from rank 0. With chunks > 1 the iterations are timed in that many chunks and
the fastest chunk counts (as the dtrain worker does with BENCH_CHUNKS)."""
import json
import sys
import time

import numpy as np
from mpi4py import MPI


def iters_for(nbytes):
    return max(20, min(20000, int(2e8 // max(nbytes, 4096))))


def main():
    comm = MPI.COMM_WORLD
    sizes = [int(s) for s in sys.argv[1].split(",")]
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    n = comm.Get_size()
    for nbytes in sizes:
        count = max(1, nbytes // 4)
        send = np.ones(count, dtype=np.float32)
        recv = np.empty(count, dtype=np.float32)
        iters = iters_for(nbytes)
        for _ in range(max(5, iters // 10)):
            comm.Allreduce(send, recv, op=MPI.SUM)
        per_chunk = iters // max(1, min(chunks, iters))
        seconds = float("inf")
        for _ in range(max(1, min(chunks, iters))):
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(per_chunk):
                comm.Allreduce(send, recv, op=MPI.SUM)
            seconds = min(seconds, (time.perf_counter() - t0) / per_chunk)
        comm.Barrier()
        if comm.Get_rank() == 0:
            algbw = nbytes / seconds / 1e9
            print(json.dumps({"impl": "openmpi", "bytes": nbytes, "time_us": seconds * 1e6, "algbw_GBps": algbw,
                              "busbw_GBps": algbw * 2 * (n - 1) / n}), flush=True)


main()
