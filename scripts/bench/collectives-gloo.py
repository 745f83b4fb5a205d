"""PyTorch Gloo side of scripts/bench/collectives.mjs: all-reduce (sum, float32) timed like the dtrain worker.
Run as: /usr/bin/python3 scripts/bench/collectives-gloo.py 2 4096,16777216 [chunks] (starts its own ranks).
Prints one JSON line per size from rank 0; chunks as in collectives-mpi.py."""
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def iters_for(nbytes):
    return max(20, min(20000, int(2e8 // max(nbytes, 4096))))


def worker(rank, world, port, sizes, chunks):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for nbytes in sizes:
        t = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
        iters = iters_for(nbytes)
        for _ in range(max(5, iters // 10)):
            dist.all_reduce(t)
        n_chunks = max(1, min(chunks, iters))
        per_chunk = iters // n_chunks
        seconds = float("inf")
        for _ in range(n_chunks):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(per_chunk):
                dist.all_reduce(t)
            seconds = min(seconds, (time.perf_counter() - t0) / per_chunk)
        dist.barrier()
        if rank == 0:
            algbw = nbytes / seconds / 1e9
            print(json.dumps({"impl": "gloo", "bytes": nbytes, "time_us": seconds * 1e6, "algbw_GBps": algbw,
                              "busbw_GBps": algbw * 2 * (world - 1) / world}), flush=True)
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2].split(",")]
    chunks = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, sizes, chunks), nprocs=world, join=True)


if __name__ == "__main__":
    main()
