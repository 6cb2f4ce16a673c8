"""Multi-process training (`torchrun --nproc_per_node N -m etstpm.cli train ...`): one process per GPU (NCCL) or
per CPU share (gloo), started by torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE.

What is split and how (docs/training.md, "Multi-GPU / multi-process"):
- STPM student: DistributedDataParallel. Every step takes the same global batch of `--batch-size` images, in the same
  shuffled order as a single process (one shared-seed permutation), and each rank trains on its contiguous share;
  the per-rank loss is weighted by its share so that DDP's gradient average equals the single-process gradient.
- memory bank: each rank extracts the patch features of whole batches of the training set (the same batches a single
  process forms), rank 0 gathers them in order and runs the coreset on the very matrix a single process would have.
- only rank 0 writes the run folder (run.json, checkpoints, weights, calibration).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler

log = logging.getLogger(__name__)

# A rank waits at a collective while another one works alone (rank 0 fits the coreset, others wait for the end).
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    """The process's place in a torchrun job (world 1 when not started by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Dist(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup(ctx: Dist, device: torch.device) -> torch.device:
    """Join the process group (CPU tensors over gloo, CUDA tensors over NCCL); returns this rank's device."""
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    log.info("rank %d of %d on %s (%s)", ctx.rank, ctx.world, device, backend)
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_module(module: nn.Module, ctx: Dist) -> None:
    """Make every rank's parameters and buffers rank 0's (in place)."""
    if ctx.enabled:
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def all_sum(values: list[float], ctx: Dist) -> list[float]:
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def share(n: int, ctx: Dist) -> tuple[int, int]:
    """[start, end) of this rank's contiguous share of n items (sizes differ by at most one, larger ones first)."""
    base, extra = divmod(n, ctx.world)
    start = ctx.rank * base + min(ctx.rank, extra)
    return start, start + base + (1 if ctx.rank < extra else 0)


def batch_shard(n: int, batch_size: int, ctx: Dist) -> range:
    """Dataset indices of this rank's whole batches: the batches a single process forms (in order), split in
    contiguous runs, so each image is computed in the very batch it would be in alone."""
    n_batches = -(-n // batch_size)
    lo, hi = share(n_batches, ctx)
    return range(min(lo * batch_size, n), min(hi * batch_size, n))


def gather_rows(t: torch.Tensor, ctx: Dist) -> torch.Tensor | None:
    """Rank 0: the ranks' [n_r, D] CPU tensors concatenated in rank order; other ranks: None.

    Point-to-point over gloo rather than all_gather: shares differ in length, and only rank 0 needs the whole
    matrix (on MTD the patch features are 4 GB; every rank holding a copy would multiply that by the world size).
    """
    if not ctx.enabled:
        return t
    t = t.contiguous().cpu()
    if not ctx.is_main:
        dist.send(torch.tensor([t.shape[0]], dtype=torch.int64), dst=0)
        if t.shape[0]:
            dist.send(t, dst=0)
        return None
    parts = [t]
    for src in range(1, ctx.world):
        rows = torch.zeros(1, dtype=torch.int64)
        dist.recv(rows, src=src)
        part = torch.empty((int(rows), *t.shape[1:]), dtype=t.dtype)
        if part.shape[0]:
            dist.recv(part, src=src)
        parts.append(part)
    return torch.cat(parts)


class RankBatchSampler(Sampler[list[int]]):
    """This rank's share of each global batch, in the single-process order.

    The global batches come from the very samplers a DataLoader with shuffle=True builds (RandomSampler on the shared
    generator, BatchSampler), so with the generator also given to the DataLoader (which draws its base seed from it
    first) every rank sees the batches a single process would, and the generator advances alike epoch after epoch.
    A last global batch with fewer images than ranks is skipped (every rank must take part in every step's gradient
    exchange).
    """

    def __init__(self, n: int, batch_size: int, ctx: Dist, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.ctx, self.generator = n, batch_size, ctx, generator

    def __len__(self) -> int:
        sizes = [min(self.batch_size, self.n - k) for k in range(0, self.n, self.batch_size)]
        return sum(1 for s in sizes if s >= self.ctx.world)

    def __iter__(self) -> Iterator[list[int]]:
        order = RandomSampler(range(self.n), generator=self.generator)
        for batch in BatchSampler(order, self.batch_size, drop_last=False):
            if len(batch) >= self.ctx.world:  # (iterate to the end: the sampler's last draws happen there)
                lo, hi = share(len(batch), self.ctx)
                yield batch[lo:hi]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the incoming gradients (torch.distributed.nn's
    all_reduce does this too, but is deprecated in favour of a private module)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the whole global batch, for CPU ranks.

    torch's SyncBatchNorm does this on CUDA only. Here the per-channel sums (in float64) are added across ranks
    with a differentiable all_reduce whose backward sums the gradients flowing into the statistics from every rank,
    as SyncBatchNorm's does; the running statistics get the unbiased global variance,
    as BatchNorm2d's. Eval mode is plain BatchNorm2d. Same parameters and buffers, so state_dicts are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        c = x.shape[1]
        x64 = x.double()
        count = x64.new_tensor([x.numel() / c])
        sums = _AllReduceSum.apply(torch.cat([x64.sum((0, 2, 3)), (x64 * x64).sum((0, 2, 3)), count]))
        n = sums[-1]
        mean = sums[:c] / n
        var = (sums[c:2 * c] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.float(), alpha=m)
            self.running_var.mul_(1 - m).add_((var * n / (n - 1).clamp_min(1.0)).float(), alpha=m)
        scale = (var + self.eps).rsqrt().float()
        y = (x - mean.float()[None, :, None, None]) * scale[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def global_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of `module` computing global-batch statistics: SyncBatchNorm on CUDA, else
    GlobalBatchNorm2d (weights and statistics carried over, same objects)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            g = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            g.weight, g.bias = child.weight, child.bias
            g.running_mean, g.running_var, g.num_batches_tracked = (child.running_mean, child.running_var,
                                                                    child.num_batches_tracked)
            g.train(child.training)
            setattr(module, name, g)
        else:
            global_batchnorm(child, device)
    return module
