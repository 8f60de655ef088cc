"""Epoch checkpoints of a TrainingJob's run in MLflow, where the pods that take over find them.

A run's pods are not the ones that resume it, so the checkpoint cannot live on them. The operator
restarts a failed gang (workers > 1) as a new Job (attempt 1, 2, ... in ``KUBELOOP_GANG_ATTEMPT``);
the Job controller replaces a single worker's pod that was evicted, preempted or drained (the
operator's pod failure policy) or that failed within ``backoffLimit``, and that pod is not told it
is a replacement. The chief uploads the checkpoint after an epoch as the artifact
``resume/checkpoint.pt`` of its MLflow run, with the epoch in a tag. A gang of a later attempt, and
every single worker, take the newest one from the earlier runs of the same TrainingJob (uid) and
the same spec (sha256 of it: an edited spec starts afresh) that did not finish (a finished run has
nothing left to resume), and the chief hands the bytes to every rank.

A checkpoint costs its snapshot and upload (23 ms for a 1.2 MB one on a local MLflow server,
``make bench-resume``): after every epoch of a fast fit that would be a sixth of its time. The chief
takes one after the first epoch, then waits until the time since the last one is at least
``1 / TIME_SHARE - 1`` times what it cost, so checkpoints take at most ``TIME_SHARE`` of a fit's
time, and an epoch longer than that gap is checkpointed every time. A pod asked to stop (SIGTERM:
an eviction, a drain) takes one after the epoch it is in, whatever the gap, so its replacement
loses no finished epoch.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mlflow.tracking import MlflowClient

from kubeloop_trainer.context import RunContext
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.stopping import stop_requested
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.topology import Topology

ATTEMPT_ENV = "KUBELOOP_GANG_ATTEMPT"  # rendered by the operator for workers > 1
CHECKPOINT_ARTIFACT = "resume/checkpoint.pt"
CHECKPOINT_EPOCH_TAG = "kubeloop.io/checkpoint-epoch"  # the epoch the run's checkpoint was taken after
SPEC_TAG = "kubeloop.io/spec-sha256"
ATTEMPT_TAG = "kubeloop.io/gang-attempt"
RESUMED_FROM_RUN_TAG = "kubeloop.io/resumed-from-run"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # a run parameter
TIME_SHARE = 0.05  # of a fit's wall time, at most, spent taking checkpoints


def spec_digest(context: RunContext) -> str:
    return hashlib.sha256(context.spec.model_dump_json(by_alias=True).encode()).hexdigest()


def attempt_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """The gang's attempt; None for a pod that is not one of a gang's (it cannot tell a first try)."""
    raw = (os.environ if env is None else env).get(ATTEMPT_ENV)
    if raw is None:
        return None
    return int(raw.strip()) if raw.strip().isdigit() else 0


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
        finished = run.info.status == "FINISHED"  # nothing left to resume
        if run.info.run_id == own_run or finished or CHECKPOINT_EPOCH_TAG not in run.data.tags:
            continue
        with tempfile.TemporaryDirectory(prefix="kubeloop-resume-") as scratch:
            local = client.download_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT, scratch)
            return run.info.run_id, Path(local).read_bytes()
    return None


class RunCheckpoints:
    """`EpochCheckpoints` of one TrainingJob's run, kept in its chief's MLflow run."""

    def __init__(
        self,
        context: RunContext,
        recorder: Recorder,
        attempt: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topology = context.topology
        self.recorder = recorder
        self.uid = context.job.uid or ""
        self.digest = spec_digest(context)
        self.attempt = attempt
        self._source: str | None = None
        self.clock = clock
        self._next_at = -math.inf  # the clock's time of the next checkpoint
        self._taking_since = 0.0
        recorder.tags({SPEC_TAG: self.digest} | ({} if attempt is None else {ATTEMPT_TAG: str(attempt)}))

    def load(self) -> bytes | None:
        found = None
        tracker, run_id = self.recorder.tracker, self.recorder.run_id
        looks = self.attempt != 0  # a gang's first attempt has nothing to resume
        if looks and tracker is not None and run_id is not None:
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
        who = "this pod" if self.attempt is None else f"gang attempt {self.attempt}"
        self.recorder.progress.say(f"{who}: resuming after epoch {epoch} of run {self._source}")

    def due(self) -> bool:
        if self.recorder.tracker is None:  # not the chief: its snapshot would go nowhere
            return False
        now = self.clock()
        if now < self._next_at and not stop_requested():
            return False
        self._taking_since = now
        return True

    def save(self, epoch: int, data: bytes) -> None:  # only after due(): the chief's
        try:
            self.recorder.file(data, CHECKPOINT_ARTIFACT)
            self.recorder.tags({CHECKPOINT_EPOCH_TAG: str(epoch)})
        except Exception as error:  # a lost checkpoint costs a restart some epochs, never the run
            self.recorder.progress.say(
                f"checkpoint after epoch {epoch} not saved: {type(error).__name__}: {error}"
            )
        now = self.clock()
        self._next_at = now + (now - self._taking_since) * (1 / TIME_SHARE - 1)


def run_checkpoints(context: RunContext, recorder: Recorder) -> RunCheckpoints | None:
    """Checkpoints for a run of a TrainingJob (its pods are replaced or restarted; a run outside one
    is not)."""
    if context.job.uid is None:
        return None
    return RunCheckpoints(context, recorder, attempt_from_env())
