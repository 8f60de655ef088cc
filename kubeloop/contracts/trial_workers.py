"""The environment of a trial-worker pod: rendered by the operator, read by ``kubeloop train``.

A TrainingJob with ``tuning.storage`` runs its trials in ``tuning.parallelism`` pods of an indexed Job
that share one Optuna study in a database. Each pod learns its completion index, how many workers there
are and the database's URL (only ever from the Secret, as ``valueFrom.secretKeyRef``); the study is
named after the TrainingJob's uid, so every pod of the job (replacements included) finds the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

STORAGE_ENV = "KUBELOOP_STUDY_STORAGE"
INDEX_ENV = "KUBELOOP_TRIAL_WORKER_INDEX"
COUNT_ENV = "KUBELOOP_TRIAL_WORKERS"
HEARTBEAT_ENV = "KUBELOOP_STUDY_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 10
FINALISER_INDEX = 0  # the operator reads the summary of completion index 0: that worker finalises


class TrialWorkerEnvError(ValueError):
    """The trial-worker variables are incomplete or malformed."""


@dataclass(frozen=True)
class TrialWorker:
    """This pod's place among the trial workers of one study."""

    index: int
    count: int
    storage_url: str
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS

    @property
    def is_finaliser(self) -> bool:
        """Waits for the study to end, then exports and registers the best trial's model."""
        return self.index == FINALISER_INDEX

    def to_env(self) -> dict[str, str]:
        """The variables as literal values (in a pod the index and the URL come by reference)."""
        return {
            STORAGE_ENV: self.storage_url,
            INDEX_ENV: str(self.index),
            COUNT_ENV: str(self.count),
            HEARTBEAT_ENV: str(self.heartbeat_seconds),
        }


def study_name(uid: str | None, run_name: str | None) -> str:
    """One study per TrainingJob (its uid); outside Kubernetes, per run name."""
    return f"kubeloop-{uid or run_name or 'local'}"


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise TrialWorkerEnvError(f"{name}={raw!r} is not an integer") from error


def trial_worker_from_env(env: Mapping[str, str]) -> TrialWorker | None:
    """This pod's TrialWorker; None when it is not one (no storage URL)."""
    url = env.get(STORAGE_ENV, "").strip()
    if not url:
        return None
    worker = TrialWorker(
        index=_int(env, INDEX_ENV, 0),
        count=_int(env, COUNT_ENV, 1),
        storage_url=url,
        heartbeat_seconds=_int(env, HEARTBEAT_ENV, DEFAULT_HEARTBEAT_SECONDS),
    )
    if worker.count < 1 or not 0 <= worker.index < worker.count:
        raise TrialWorkerEnvError(f"{INDEX_ENV}={worker.index} does not fit {COUNT_ENV}={worker.count}")
    if worker.heartbeat_seconds < 1:
        raise TrialWorkerEnvError(f"{HEARTBEAT_ENV} must be at least 1")
    return worker
