"""Data-parallel training on ``torch.distributed``, launched by ``torchrun``.

Every family trains data-parallel without a line of its own: the loop hands ``train_step``
optimizers wrapped in ``AveragingOptimizer``, which averages each parameter's gradient over the
ranks (one all-reduce of the flattened gradients, over gloo: the ranks train on the CPU) just
before the update. That is what ``DistributedDataParallel`` does, moved from the forward pass to
the step (``DistributedDataParallel`` cannot serve these families: a GAN alternates between networks
within a step, so some parameters have no gradient at a given backward pass, and WGAN-GP's
penalty differentiates through ``torch.autograd.grad``, which DDP's hooks do not support). With
equal local batches the averaged gradient of the local means is the gradient of the global
batch's mean, the penalty's included.

The data is split into ``data_parts`` parts, fixed for a run (``TrainingSettings``); rank r of W
owns the contiguous parts r·P/W … (r+1)·P/W − 1 and reads only their events. A global batch is
the concatenation, in part order, of every part's batch, so a run is the same whatever the number
of processes that divides P: one process with P parts equals P processes, and ``--resume`` may
change the world size. Random draws inside a step (``models.common.shard_randn`` and
``shard_rand``) are drawn for the global batch from the step's generator and sliced to the rank's
rows, for the same reason.

Only rank 0 fits the preprocessing, evaluates, logs and writes checkpoints and the model
directory; the other ranks load what it wrote.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from caloforge.errors import CaloforgeError

__all__ = [
    "AveragingOptimizer",
    "World",
    "any_rank",
    "barrier",
    "mean_over_ranks",
    "start",
    "stop",
]

TIMEOUT_S = float(os.environ.get("CALOFORGE_DIST_TIMEOUT", "600"))
"""How long a collective operation (or the rendezvous of the process group) may wait."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def start() -> World:
    """Join the process group torchrun set up (its environment), or run alone without one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "gloo"  # the ranks train on the CPU (the loop refuses --device cuda here)
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        try:
            dist.init_process_group(
                backend, timeout=datetime.timedelta(seconds=TIMEOUT_S), init_method="env://"
            )
        except (RuntimeError, ValueError) as exc:  # c10d reports timeouts as RuntimeError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CaloforgeError(
                f"cannot join the training processes at {where} within {TIMEOUT_S:g} s: {first}"
            ) from None
    return World(dist.get_rank(), dist.get_world_size())


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()


def any_rank(world: World, flag: bool) -> bool:
    """Whether any rank's ``flag`` is set (stop now, say): the same answer on every rank."""
    if not world.parallel:
        return flag
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(world: World, values: dict[str, float]) -> dict[str, float]:
    """The mean of each logged value over the ranks (every rank must call it with the same keys)."""
    if not world.parallel or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world.size for k, v in zip(keys, tensor)}


class AveragingOptimizer:
    """An optimizer whose ``step`` first averages its parameters' gradients over the ranks.

    Parameters without a gradient are left out; every rank runs the same code on equal batches,
    so they are the same parameters on every rank. Everything else is the wrapped optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, world: World):
        self.optimizer = optimizer
        self.world = world
        self.seconds = 0.0
        """Time spent in the all-reduce (communication and waiting for the slowest rank)."""

    def step(self, closure=None):
        grads = [
            p.grad
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if grads:
            started = time.perf_counter()
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world.size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
            self.seconds += time.perf_counter() - started
        return self.optimizer.step(closure)

    def __getattr__(self, name: str):
        return getattr(self.optimizer, name)
