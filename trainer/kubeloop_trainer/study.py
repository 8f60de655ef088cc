"""The Optuna study that trial workers share in PostgreSQL: storage, admission lock, counts, heartbeat.

Optuna gives one study in a database, heartbeats and per-trial intermediate values (so the MedianPruner
works across pods). What it does not give is an exact trial budget across processes: each worker of
``study.optimize`` decides on its own, so N workers overshoot ``maxTrials``. Here a trial is admitted
only under a PostgreSQL advisory lock (per study), after counting every trial that is not WAITING; the
lock dies with the connection, so a killed worker never leaves it held. Inside the lock a trial gets its
first heartbeat and the worker's index before the lock is released: a RUNNING trial seen without the
index under the lock belongs to a worker killed in between, and is failed there.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from kubeloop.api.progress import TrialCounts
from kubeloop_trainer.errors import StudyStorageError

WORKER_ATTR = "kubeloop.io/worker"  # the index of the worker that runs a trial
RUN_ATTR = "kubeloop.io/mlflow-run"  # a trial's MLflow child run
GRACE_HEARTBEATS = 4  # a trial is stale after this many missed heartbeats
SCHEMA_LOCK = "kubeloop-optuna-schema"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[None]:
    """Held by this connection until the block ends, or until the process dies."""
    key = lock_key(name)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@dataclass
class SharedStudy:
    study: optuna.Study
    storage: optuna.storages.RDBStorage
    engine: Engine  # for the advisory lock, outside Optuna's sessions
    heartbeat_seconds: int

    @contextmanager
    def locked(self) -> Iterator[None]:
        with advisory_lock(self.engine, self.study.study_name):
            yield

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)


def open_study(
    url: str,
    name: str,
    direction: Literal["minimize", "maximize"],
    sampler: Any,
    pruner: Any,
    heartbeat_seconds: int,
    on_stale: StaleTrialCallback,
) -> SharedStudy:
    """Create or load the study ``name`` in the PostgreSQL database at ``url``."""
    try:
        backend = make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError as error:
        raise StudyStorageError(f"the study storage URL is not a SQLAlchemy URL: {error}") from None
    if backend != "postgresql":
        raise StudyStorageError(
            f"the study storage must be PostgreSQL (postgresql+psycopg://...), not {backend}"
        )
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            with advisory_lock(engine, SCHEMA_LOCK):  # workers starting at once create the tables once
                storage = optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_seconds,
                    grace_period=GRACE_HEARTBEATS * heartbeat_seconds,
                    heartbeat_stale_trial_callback=on_stale,
                )
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        raise StudyStorageError(f"cannot open study {name}: {type(error).__name__}: {error}") from error
    return SharedStudy(study, storage, engine, heartbeat_seconds)


def fail_stale(shared: SharedStudy) -> None:
    """Optuna's heartbeat reaper (FAIL, then the stale-trial callback), "experimental" in Optuna."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(shared.study)


def fail_orphans(shared: SharedStudy, trials: list[FrozenTrial]) -> None:
    """Under the lock: fail RUNNING trials whose worker died before it could mark them as its own."""
    for trial in trials:
        if trial.state == TrialState.RUNNING and WORKER_ATTR not in trial.user_attrs:
            shared.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def admit(shared: SharedStudy, max_trials: int, worker: int) -> optuna.Trial | None:
    """A new trial of this worker, or None once ``max_trials`` trials exist (exactly, across workers)."""
    fail_stale(shared)
    with shared.locked():
        trials = shared.trials()
        fail_orphans(shared, trials)
        if sum(t.state != TrialState.WAITING for t in trials) >= max_trials:
            return None
        trial = shared.study.ask()
        shared.storage.record_heartbeat(trial._trial_id)  # Optuna's own optimize() does the same
        trial.set_user_attr(WORKER_ATTR, worker)
        return trial


def counts(shared: SharedStudy, total: int) -> TrialCounts:
    states = Counter(t.state for t in shared.trials())
    return TrialCounts(
        total=total,
        running=states[TrialState.RUNNING],
        complete=states[TrialState.COMPLETE],
        pruned=states[TrialState.PRUNED],
        failed=states[TrialState.FAIL],
    )


def finished(shared: SharedStudy, max_trials: int) -> bool:
    """Every admitted trial ended; reaps stale and orphaned ones on the way."""
    fail_stale(shared)
    with shared.locked():
        trials = shared.trials()
        fail_orphans(shared, trials)
    return sum(t.state in FINISHED for t in shared.trials()) >= max_trials


@contextmanager
def heartbeat(shared: SharedStudy, trial: optuna.Trial) -> Iterator[None]:
    """Beats for ``trial`` while the block runs; a worker killed mid-trial stops beating."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(shared.heartbeat_seconds):
            try:
                shared.storage.record_heartbeat(trial._trial_id)
            except Exception as error:  # a missed beat is retried; a long outage fails the trial
                print(f"heartbeat of trial {trial.number} failed: {error}", flush=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
