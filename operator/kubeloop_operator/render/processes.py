"""Several processes per training pod: torchrun as the pod's launcher (torchrun's conventions).

With ``processesPerWorker`` P > 1 the container runs ``python -m torch.distributed.run --no-python
<command>``; torchrun's agent starts P copies of the command and gives each LOCAL_RANK 0..P-1,
RANK = pod index * P + LOCAL_RANK, WORLD_SIZE = workers * P, LOCAL_WORLD_SIZE = P and
GROUP_RANK = the pod index. It is configured by its ``PET_*`` environment variables (what Kubeflow's
PyTorchJob sets too): a static rendezvous at rank 0's pod (localhost with one pod), no restarts in the
pod (a failed process fails the pod, and with it the Job's policy decides). With P = 1 nothing changes:
the pod is the process and gets RANK/WORLD_SIZE/LOCAL_RANK itself.
"""

from __future__ import annotations

from typing import Any

LAUNCHER = ["python", "-m", "torch.distributed.run", "--no-python"]
LOOPBACK = "127.0.0.1"


def launched(command: list[str], processes: int) -> list[str]:
    """The container's command: ``command`` itself, or torchrun starting ``processes`` of it."""
    return command if processes <= 1 else [*LAUNCHER, *command]


def launcher_env(
    master_addr: str, master_port: int, workers: int, processes: int, pod_index: dict[str, Any]
) -> list[dict[str, Any]]:
    """torchrun's settings for pod ``pod_index`` (a fieldRef to its completion index) of ``workers``."""
    node_rank = {"valueFrom": pod_index} if workers > 1 else {"value": "0"}
    return [
        {"name": "PET_NNODES", "value": str(workers)},
        {"name": "PET_NPROC_PER_NODE", "value": str(processes)},
        {"name": "PET_NODE_RANK", **node_rank},
        {"name": "PET_MASTER_ADDR", "value": master_addr if workers > 1 else LOOPBACK},
        {"name": "PET_MASTER_PORT", "value": str(master_port)},
        {"name": "PET_MAX_RESTARTS", "value": "0"},
    ]
