"""OpenMPI side of scripts/bench/collectives.mjs: all-reduce (sum, float32) timed like the dtrain worker.
Run as: mpirun --allow-run-as-root -np 2 /usr/bin/python3 scripts/bench/collectives-mpi.py 4096,16777216
Prints one JSON line per size from rank 0."""
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
    n = comm.Get_size()
    for nbytes in sizes:
        count = max(1, nbytes // 4)
        send = np.ones(count, dtype=np.float32)
        recv = np.empty(count, dtype=np.float32)
        iters = iters_for(nbytes)
        for _ in range(max(5, iters // 10)):
            comm.Allreduce(send, recv, op=MPI.SUM)
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            comm.Allreduce(send, recv, op=MPI.SUM)
        seconds = (time.perf_counter() - t0) / iters
        comm.Barrier()
        if comm.Get_rank() == 0:
            algbw = nbytes / seconds / 1e9
            print(json.dumps({"impl": "openmpi", "bytes": nbytes, "time_us": seconds * 1e6, "algbw_GBps": algbw,
                              "busbw_GBps": algbw * 2 * (n - 1) / n}), flush=True)


main()
