# An unchanged PyTorch program for scripts/gpu/launch_checks.sh: NCCL process group from torchrun's
# environment contract (env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK), one all_reduce on a
# CUDA tensor, one JSON line.
import json
import os

import torch
import torch.distributed as dist

local_rank = int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(local_rank)
dist.init_process_group("nccl")
t = torch.ones(1, device="cuda") * (dist.get_rank() + 1)
dist.all_reduce(t)
print(json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "torch_backend": dist.get_backend(), "sum": t.item()}))
dist.destroy_process_group()
