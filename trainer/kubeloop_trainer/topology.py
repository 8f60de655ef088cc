"""Where this process stands among the workers, from the environment the operator renders.

For workers > 1 each pod of the indexed Job gets MASTER_ADDR (rank 0's DNS name), MASTER_PORT,
WORLD_SIZE, RANK (the completion index) and LOCAL_RANK=0; without them there is one worker. With
several processes per pod, torchrun (the pod's launcher) gives each process torchrun's conventions:
LOCAL_RANK 0..P-1, RANK = GROUP_RANK * P + LOCAL_RANK, WORLD_SIZE = pods * P, LOCAL_WORLD_SIZE = P.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kubeloop_trainer.errors import InvalidSpecError


@dataclass(frozen=True)
class Topology:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    group_rank: int = 0  # the pod's index

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_chief(self) -> bool:
        """Rank 0: the worker that logs to MLflow, exports and registers."""
        return self.rank == 0


SINGLE_WORKER = Topology()


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise InvalidSpecError(f"{name}={raw!r} is not an integer") from error


def topology_from_env(env: Mapping[str, str] | None = None) -> Topology:
    env = os.environ if env is None else env
    topology = Topology(
        world_size=_int_env(env, "WORLD_SIZE", 1),
        rank=_int_env(env, "RANK", 0),
        local_rank=_int_env(env, "LOCAL_RANK", 0),
        local_world_size=_int_env(env, "LOCAL_WORLD_SIZE", 1),
        group_rank=_int_env(env, "GROUP_RANK", 0),
    )
    if topology.world_size < 1 or not 0 <= topology.rank < topology.world_size:
        raise InvalidSpecError(f"RANK={topology.rank} does not fit WORLD_SIZE={topology.world_size}")
    if not 0 <= topology.local_rank < topology.local_world_size:
        raise InvalidSpecError(
            f"LOCAL_RANK={topology.local_rank} does not fit LOCAL_WORLD_SIZE={topology.local_world_size}"
        )
    if topology.distributed and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        raise InvalidSpecError("WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT")
    return topology


def is_pod_leader(env: Mapping[str, str] | None = None) -> bool:
    """LOCAL_RANK 0: the one process of a pod that writes the pod's termination message."""
    env = os.environ if env is None else env
    return env.get("LOCAL_RANK", "").strip() in ("", "0")
