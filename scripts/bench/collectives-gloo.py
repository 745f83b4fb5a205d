"""PyTorch Gloo side of scripts/bench/collectives.mjs: all-reduce (sum, float32) timed op by op like the
dtrain worker. Run as: /usr/bin/python3 scripts/bench/collectives-gloo.py 2 <bytes,...> <ops,...> <warmup,...>
<dir>
(starts its own ranks). Rank 0 writes per-op latencies to <dir>/<bytes>.f64 and prints one JSON line per
size, as collectives-mpi.py does."""
import json
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, world, port, sizes, ops, warmups, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for nbytes, n_ops, n_warmup in zip(sizes, ops, warmups):
        t = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
        for _ in range(n_warmup):
            dist.all_reduce(t)
        samples = np.empty(n_ops, dtype="<f8")
        samples.fill(0)  # no page faults inside the timed loop
        clock = time.perf_counter_ns
        dist.barrier()
        cpu0 = time.process_time()
        for i in range(n_ops):
            t0 = clock()
            dist.all_reduce(t)
            samples[i] = clock() - t0
        cpu = torch.tensor([time.process_time() - cpu0], dtype=torch.float64)
        dist.all_reduce(cpu)
        if rank == 0:
            samples.tofile(os.path.join(out, f"{nbytes}.f64"))
            print(json.dumps({"bytes": nbytes, "ops": n_ops, "cpu_s": cpu.item(), "ranks": world}), flush=True)
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2].split(",")]
    ops = [int(s) for s in sys.argv[3].split(",")]
    warmups = [int(s) for s in sys.argv[4].split(",")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, sizes, ops, warmups, sys.argv[5]), nprocs=world, join=True)


if __name__ == "__main__":
    main()
