"""Distributed PyTorch: join the process group the operator set up, average gradients (DDP).

With WORLD_SIZE > 1 every worker calls ``init_process_group(backend, init_method="env://")``
(gloo on CPU, nccl on GPU), wraps its network in DistributedDataParallel and trains on its
own shard of the rows; DDP averages the gradients of all ranks in each backward pass, so the
weights stay identical everywhere.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kubeloop_trainer.topology import Topology


def device_for(topology: Topology) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", topology.local_rank)
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def join(topology: Topology) -> None:
    """Join the process group (blocks until every worker has arrived); no-op for one worker."""
    if not topology.distributed or dist.is_initialized():
        return
    device = device_for(topology)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), init_method="env://")


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, topology: Topology) -> bool:
    """True on every rank when ``flag`` is true on any rank (keeps control flow in lock-step)."""
    if not topology.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device_for(topology))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def wrap_for_workers(network: nn.Module, topology: Topology) -> nn.Module:
    """DistributedDataParallel around ``network`` when there are several workers: it averages
    the gradients of all ranks in every backward pass (and starts from rank 0's weights)."""
    if not topology.distributed:
        return network
    device = device_for(topology)
    return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
