#!/usr/bin/python3
"""The example's model in PyTorch DDP: the reference of scripts/bench/train-vs-torch.mjs.

The same MLP as src/examples/train/mlp.ts (inputs -> hidden x (layers-1) -> classes, ReLU between layers,
torch.nn.Linear's default init), the same data (the driver writes the example's generated train and eval
sets to DATA as raw float32 rows and int32 labels), the same global batch split over the ranks as one
microbatch, AdamW (weight decay 0, PyTorch's defaults otherwise, as ShardedAdam's), gloo on the CPU, one
thread per rank. The training loop is timed between a barrier before the first step and one after the
last, like the example's; CPU seconds are every rank's process time over the loop, summed.

  /usr/bin/python3 scripts/bench/train_torch_ddp.py --world 2 --data DIR --steps 100 [--hidden 96 ...]

Prints `step N loss X` every --log-every steps (rank 0), then `eval_loss X`, then
`train_seconds S samples_per_second R cpu_seconds_all_ranks C`, the example's own last lines.
"""
import argparse
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def model(inputs, hidden, layers, classes):
    dims = [inputs] + [hidden] * (layers - 1) + [classes]
    mods = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i != layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def load(data_dir, name, inputs):
    x = np.fromfile(os.path.join(data_dir, f"{name}.x"), dtype=np.float32).reshape(-1, inputs)
    y = np.fromfile(os.path.join(data_dir, f"{name}.y"), dtype=np.int32)
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


def run(rank, args, port):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    torch.manual_seed(args.seed)
    net = model(args.inputs, args.hidden, args.layers, args.classes)
    ddp = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.AdamW(ddp.parameters(), lr=args.lr, weight_decay=0.0)
    x, y = load(args.data, "train", args.inputs)
    ex, ey = load(args.data, "eval", args.inputs)
    local = args.global_batch // args.world
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(x.shape[0], generator=gen)
    at = 0
    dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, args.steps + 1):
        if step == args.warmup_steps + 1 and step > 1:
            # the timed part starts after the warm-up, as in the example (--warmup-steps)
            dist.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
        if at + args.global_batch > order.numel():
            order, at = torch.randperm(x.shape[0], generator=gen), 0
        ids = order[at + rank * local : at + (rank + 1) * local]
        at += args.global_batch
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ddp(x[ids]), y[ids])
        loss.backward()
        opt.step()
        if step % args.log_every == 0 or step == args.steps:
            # the global batch's mean loss, as the example prints it
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            if rank == 0:
                print(f"step {step} loss {mean.item() / args.world:.6f}", flush=True)
    dist.barrier()
    seconds = time.perf_counter() - t0
    cpu = torch.tensor([time.process_time() - c0], dtype=torch.float64)
    dist.all_reduce(cpu)
    if rank == 0:
        with torch.no_grad():
            print(f"eval_loss {F.cross_entropy(net(ex), ey).item():.6f}")
        trained = (args.steps - args.warmup_steps) * args.global_batch
        print(
            f"train_seconds {seconds:.2f} samples_per_second {trained / seconds:.1f} "
            f"cpu_seconds_all_ranks {cpu.item():.2f}",
            flush=True,
        )
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--data", required=True)
    for name, d in [("steps", 100), ("global-batch", 128), ("hidden", 96), ("layers", 6), ("inputs", 32),
                    ("classes", 8), ("seed", 1234), ("log-every", 25), ("warmup-steps", 0)]:
        p.add_argument(f"--{name}", type=int, default=d)
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(run, args=(args, port), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
