# Progress from a PyTorch training loop for `dtrain status`, `dtrain top` and the monitor, with the standard
# library only: one JSON line per step appended to the file named by DTRAIN_PROGRESS_FILE (unset when the
# script runs outside dtrain: then nothing is written). `wait_s`, the seconds this step spent in
# collectives, lets dtrain tell a slow rank (compute) from one that waits for a slow peer.
#
#   dtrain launch --nproc-per-node 4 -- python3 train_pytorch.py --steps 200
import argparse
import json
import os
import time

import torch
import torch.distributed as dist


class Progress:
    def __init__(self):
        path = os.environ.get("DTRAIN_PROGRESS_FILE")
        self.file = open(path, "a", buffering=1) if path else None  # line-buffered: one write per step

    def report(self, step, loss=None, samples=None, tokens=None, wait_s=None):
        if self.file is None:
            return
        rec = {"step": step, "time": time.time()}
        for key, value in (("loss", loss), ("samples", samples), ("tokens", tokens), ("wait_s", wait_s)):
            if value is not None:
                rec[key] = value
        self.file.write(json.dumps(rec) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--slow-rank", type=int, default=-1, help="this rank computes twice as long (a demo)")
    args = parser.parse_args()

    dist.init_process_group(backend="gloo", init_method="env://")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    progress = Progress()
    for step in range(1, args.steps + 1):
        x = torch.randn(args.batch, 64)
        y = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        if rank == args.slow_rank:
            time.sleep(0.05)
        # Averaging the gradients by hand (what DDP does inside backward()), timed: the wait for the others.
        t0 = time.time()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()
        wait = time.time() - t0
        opt.step()
        progress.report(step, loss=loss.item(), samples=args.batch, wait_s=wait)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
