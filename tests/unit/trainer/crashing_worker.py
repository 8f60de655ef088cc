"""``python -m tests.unit.trainer.crashing_worker EPOCH [kubeloop train args]``: the real
``kubeloop train`` of one pod of a TrainingJob, except that the last rank (rank 1 of two, the
only pod of a single worker) dies abruptly (``os._exit(137)``, as a SIGKILL or an OOM kill ends it)
as soon as it has trained epoch EPOCH.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from kubeloop_trainer import cli
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.topology import topology_from_env

KILLED = 137


def main(crash_epoch: int, argv: list[str]) -> int:
    topology = topology_from_env()
    if topology.rank == topology.world_size - 1:
        report_epoch = Recorder.epoch

        def dies_after(recorder: Recorder, epoch: int, metrics: dict[str, Any]) -> None:
            if epoch == crash_epoch:
                os._exit(KILLED)
            report_epoch(recorder, epoch, metrics)

        setattr(Recorder, "epoch", dies_after)  # noqa: B010 (the fault injected, nothing else changes)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2:]))
