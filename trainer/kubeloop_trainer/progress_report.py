"""Progress in the TrainingJob's status: the chief writes a `TrainingProgress` as JSON into the tag
``kubeloop.io/progress`` of the job's parent MLflow run; the operator reads it back.

Reports come after each epoch (PyTorch), each finished trial (tuning) and each stage (data loaded,
model trained, run published), at most one every ``MIN_INTERVAL_SECONDS``; a report held back by that
limit is written by `flush` (the run's end), so the last one always lands. The ETA is the elapsed time
per epoch (or per finished trial) times what is left. A failing write never fails the run.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubeloop.api.processes import TORCH_ALGORITHMS
from kubeloop.api.progress import TrainingProgress, TrialCounts
from kubeloop.api.training import TrainingJobSpec
from kubeloop_trainer.hyperparameters import network_hyperparameters

MIN_INTERVAL_SECONDS = 5.0
TRIAL_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}

ProgressWriter = Callable[[str], None]  # the report as JSON, into the run's progress tag


@dataclass(frozen=True)
class Plan:
    """What the run will do, as far as it is known before it starts."""

    total_epochs: int | None = None
    steps_per_epoch: int | None = None
    total_trials: int | None = None


def plan_for(spec: TrainingJobSpec, train_rows: int, world_size: int) -> Plan:
    if spec.tuning is not None:
        return Plan(total_trials=spec.tuning.max_trials)
    if spec.builtin.algorithm not in TORCH_ALGORITHMS:
        return Plan()
    if spec.fine_tune is not None:  # the batch size may come from the base model: no step count
        return Plan(total_epochs=spec.fine_tune.head_epochs + sum(s.epochs for s in spec.fine_tune.schedule))
    hyperparameters = network_hyperparameters(spec.hyperparameters)
    rows_per_rank = -(-train_rows // max(world_size, 1))
    return Plan(hyperparameters.epochs, -(-rows_per_rank // hyperparameters.batch_size))


def percent_done(done: int, total: int | None) -> float | None:
    if not total:
        return None
    return round(min(100.0, 100.0 * done / total), 1)


def eta_seconds(elapsed: float, done: int, total: int | None) -> float | None:
    """Seconds left at the pace so far (elapsed per unit done); None before the first unit."""
    if not total or done <= 0:
        return None
    return float(max(0, round(elapsed / done * (total - done))))


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics JSON can carry (a diverged loss is NaN)."""
    return {name: float(value) for name, value in metrics.items() if math.isfinite(value)}


def encode(progress: TrainingProgress) -> str:
    return json.dumps(progress.wire(), separators=(",", ":"), sort_keys=True)


class ProgressReporter:
    """The chief's progress reports, throttled; thread-safe (trials may run in threads)."""

    def __init__(
        self,
        write: ProgressWriter,
        plan: Plan,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_interval: float = MIN_INTERVAL_SECONDS,
    ) -> None:
        self.write, self.plan = write, plan
        self.clock, self.wall_clock, self.min_interval = clock, wall_clock, min_interval
        self.started = clock()
        self.trials = TrialCounts(total=plan.total_trials or 0) if plan.total_trials else None
        self._latest = TrainingProgress(total_epochs=plan.total_epochs, trials=self.trials)
        self._pending: TrainingProgress | None = None
        self._written_at: float | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        """The first report: the data is loaded, nothing trained yet."""
        measured = self.plan.total_epochs or self.plan.total_trials
        self._offer(epoch=0 if self.plan.total_epochs else None, percent=0.0 if measured else None)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """``epoch`` epochs done (counted over all phases), with their latest metrics."""
        total, elapsed = self.plan.total_epochs, self.clock() - self.started
        steps = epoch * self.plan.steps_per_epoch if self.plan.steps_per_epoch else None
        self._offer(
            epoch=epoch,
            step=steps,
            percent=percent_done(epoch, total),
            eta_seconds=eta_seconds(elapsed, epoch, total),
            metrics=finite(metrics),
        )

    def trial_started(self) -> None:
        with self._lock:
            if self.trials is not None:
                self.trials = self.trials.model_copy(update={"running": self.trials.running + 1})
        self._offer()

    def trial_finished(self, state: str, metrics: dict[str, float]) -> None:
        with self._lock:
            if self.trials is None:
                return
            counts = self.trials.model_dump()
            counts["running"] = max(0, counts["running"] - 1)
            field = TRIAL_STATES.get(state, "failed")
            counts[field] += 1
            self.trials = TrialCounts(**counts)
            finished = self.trials.complete + self.trials.pruned + self.trials.failed
        total, elapsed = self.plan.total_trials, self.clock() - self.started
        self._offer(
            percent=percent_done(finished, total),
            eta_seconds=eta_seconds(elapsed, finished, total),
            metrics=finite(metrics) or None,
        )

    def stage(self, metrics: dict[str, float]) -> None:
        """A stage ended (the model is trained): its metrics, written now if the limit allows."""
        self._offer(metrics=finite(metrics) or None)

    def finished(self, metrics: dict[str, float]) -> None:
        """The run succeeded: 100 %, nothing left; written now."""
        self._offer(percent=100.0, eta_seconds=0.0, metrics=finite(metrics) or None)
        self.flush()

    def flush(self) -> None:
        """Write the report held back by the rate limit, if any."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._write(pending)

    def _offer(self, **changes: object) -> None:
        """Update the latest report (None leaves a field as it was); write it if the limit allows."""
        with self._lock:
            update = {name: value for name, value in changes.items() if value is not None}
            update |= {"trials": self.trials, "updated": self.wall_clock()}
            self._latest = self._latest.model_copy(update=update)
            now = self.clock()
            due = self._written_at is None or now - self._written_at >= self.min_interval
            if due:
                self._written_at, self._pending = now, None
            else:
                self._pending = self._latest
            report = self._latest
        if due:
            self._write(report)

    def _write(self, report: TrainingProgress) -> None:
        try:
            self.write(encode(report))
        except Exception as error:  # progress is a courtesy: MLflow trouble shows in the run's own logging
            print(f"could not write progress to MLflow: {type(error).__name__}: {error}", file=sys.stderr)
