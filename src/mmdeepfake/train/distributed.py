"""torchrun / DistributedDataParallel helpers.

Under ``torchrun`` every process sees RANK, WORLD_SIZE and LOCAL_RANK; without them training
runs as a single process with the same code path (world size 1). Backends: gloo on CPU, nccl on
GPU. Only rank 0 writes artifacts; the others compute and take part in the collectives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` picks this rank's GPU when CUDA is available, else the CPU."""
    if name == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise return a single-rank info."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _tensor_device() -> torch.device:
    if _active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_min(value: int) -> int:
    """The smallest value across ranks (e.g. a shared batch size or 'every rank has data')."""
    if not _active():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long, device=_tensor_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum across ranks (losses, counts)."""
    if not _active():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=_tensor_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's object, in rank order (used for validation scores and skip lists)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's object on every rank (the run id, the resume decision)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier()
