"""torchrun worker of tests/torch/test_own_model.py: DDP around a user's module randomized by rna-core (gloo, CPU);
each rank trains two steps on its own batch and saves its parameters to OUT/rank<r>.pt.

    python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_user_model.py OUT
"""

import importlib.util
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from rna_core.torch import randomize

TESTS = Path(__file__).parents[1] / "torch" / "test_own_model.py"
spec = importlib.util.spec_from_file_location("own_model_tests", TESTS)
tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tests)

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = randomize(tests.UserResNet18(), "bn+in", seed=5)
ddp = DistributedDataParallel(model, find_unused_parameters=True)
opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
g = torch.Generator().manual_seed(10 + rank)
for _ in range(2):
    x, y = torch.rand(4, 3, 16, 16, generator=g), torch.randint(0, 10, (4,), generator=g)
    opt.zero_grad()
    F.cross_entropy(ddp(x), y).backward()
    opt.step()
torch.save({k: v.detach().clone() for k, v in model.named_parameters()}, Path(sys.argv[1]) / f"rank{rank}.pt")
dist.destroy_process_group()
