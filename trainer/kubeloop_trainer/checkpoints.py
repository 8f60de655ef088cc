"""Epoch checkpoints of a distributed run in MLflow, where a restarted gang finds them.

The operator restarts a failed gang as a new Job (attempt 1, 2, ... in ``KUBELOOP_GANG_ATTEMPT``);
its pods are new, so the checkpoint cannot live on them. The chief uploads it after every epoch
as the artifact ``resume/checkpoint.pt`` of its MLflow run, with the epoch in a tag. A later
attempt's chief takes the newest one from the earlier runs of the same TrainingJob (uid) and the
same spec (sha256 of it: an edited spec starts afresh), and hands the bytes to every rank.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlflow.tracking import MlflowClient

from kubeloop_trainer.context import RunContext
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.topology import Topology

ATTEMPT_ENV = "KUBELOOP_GANG_ATTEMPT"  # rendered by the operator for workers > 1
CHECKPOINT_ARTIFACT = "resume/checkpoint.pt"
CHECKPOINT_EPOCH_TAG = "kubeloop.io/checkpoint-epoch"  # the epoch the run's checkpoint was taken after
SPEC_TAG = "kubeloop.io/spec-sha256"
ATTEMPT_TAG = "kubeloop.io/gang-attempt"
RESUMED_FROM_RUN_TAG = "kubeloop.io/resumed-from-run"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # a run parameter


def spec_digest(context: RunContext) -> str:
    return hashlib.sha256(context.spec.model_dump_json(by_alias=True).encode()).hexdigest()


def attempt_from_env(env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(ATTEMPT_ENV, "0").strip()
    return int(raw) if raw.isdigit() else 0


def broadcast(data: bytes | None, topology: Topology) -> bytes | None:
    """Rank 0's ``data`` on every rank."""
    if not topology.distributed:
        return data
    import torch.distributed as dist  # only distributed runs get here

    box: list[bytes | None] = [data]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def newest_checkpoint(
    client: MlflowClient, experiment_id: str, uid: str, digest: str, own_run: str
) -> tuple[str, bytes] | None:
    """(run id, bytes) of the newest checkpoint an earlier run of this TrainingJob and spec left."""
    query = f"tags.`{UID_TAG}` = '{uid}' and tags.`{SPEC_TAG}` = '{digest}'"
    for run in client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"]):
        if run.info.run_id == own_run or CHECKPOINT_EPOCH_TAG not in run.data.tags:
            continue
        with tempfile.TemporaryDirectory(prefix="kubeloop-resume-") as scratch:
            local = client.download_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT, scratch)
            return run.info.run_id, Path(local).read_bytes()
    return None


class GangCheckpoints:
    """`EpochCheckpoints` of one distributed run, kept in its chief's MLflow run."""

    def __init__(self, context: RunContext, recorder: Recorder, attempt: int) -> None:
        self.topology = context.topology
        self.recorder = recorder
        self.uid = context.job.uid or ""
        self.digest = spec_digest(context)
        self.attempt = attempt
        self._source: str | None = None
        recorder.tags({SPEC_TAG: self.digest, ATTEMPT_TAG: str(attempt)})

    def load(self) -> bytes | None:
        found = None
        tracker, run_id = self.recorder.tracker, self.recorder.run_id
        if self.attempt > 0 and tracker is not None and run_id is not None:
            try:
                found = newest_checkpoint(
                    tracker.client, tracker.experiment_id, self.uid, self.digest, run_id
                )
            except Exception as error:  # MLflow unreachable, artifact gone: train from scratch
                self.recorder.progress.say(f"no checkpoint to resume from: {type(error).__name__}: {error}")
        if found is not None:
            self._source = found[0]
        return broadcast(found[1] if found else None, self.topology)

    def resumed(self, epoch: int) -> None:
        self.recorder.params({RESUMED_FROM_EPOCH: epoch})
        if self._source is not None:
            self.recorder.tags({RESUMED_FROM_RUN_TAG: self._source})
        self.recorder.progress.say(f"gang attempt {self.attempt}: resuming after epoch {epoch}")

    def save(self, epoch: int, data: bytes) -> None:
        if self.recorder.tracker is None:  # not the chief
            return
        try:
            self.recorder.file(data, CHECKPOINT_ARTIFACT)
            self.recorder.tags({CHECKPOINT_EPOCH_TAG: str(epoch)})
        except Exception as error:  # a lost checkpoint costs a restart some epochs, never the run
            self.recorder.progress.say(
                f"checkpoint after epoch {epoch} not saved: {type(error).__name__}: {error}"
            )


def gang_checkpoints(context: RunContext, recorder: Recorder) -> GangCheckpoints | None:
    """Checkpoints for a distributed run of a TrainingJob (the only kind the operator restarts)."""
    if not context.topology.distributed or context.job.uid is None:
        return None
    return GangCheckpoints(context, recorder, attempt_from_env())
