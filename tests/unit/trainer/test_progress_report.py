"""The trainer's progress reports: percent and ETA, the rate limit, the last report always written."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kubeloop.api.progress import TrainingProgress, TrialCounts
from kubeloop.api.training import TrainingJobSpec
from kubeloop_trainer.progress_report import (
    Plan,
    ProgressReporter,
    eta_seconds,
    percent_done,
    plan_for,
)

pytestmark = pytest.mark.unit

NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reporter(plan: Plan, clock: Clock, written: list[TrainingProgress]) -> ProgressReporter:
    def write(text: str) -> None:
        written.append(TrainingProgress.model_validate(json.loads(text)))

    return ProgressReporter(write, plan, clock=clock, wall_clock=lambda: NOON, min_interval=5.0)


@pytest.mark.parametrize(
    ("elapsed", "done", "total", "eta"),
    [
        (30.0, 3, 10, 70.0),  # 10 s an epoch, 7 to go
        (30.0, 10, 10, 0.0),
        (12.5, 1, 3, 25.0),
        (30.0, 0, 10, None),  # no pace before the first epoch
        (30.0, 3, None, None),  # no total, no ETA
        (30.0, 12, 10, 0.0),  # early stopping's extra epochs never go negative
    ],
)
def test_eta_is_the_pace_so_far_times_what_is_left(
    elapsed: float, done: int, total: int | None, eta: float | None
) -> None:
    assert eta_seconds(elapsed, done, total) == eta


def test_percent() -> None:
    assert percent_done(1, 3) == 33.3
    assert percent_done(5, 4) == 100.0
    assert percent_done(2, None) is None


def test_epochs_are_reported_at_most_every_interval_and_the_last_one_always() -> None:
    clock, written = Clock(), list[TrainingProgress]()
    report = reporter(Plan(total_epochs=4, steps_per_epoch=10), clock, written)
    report.begin()
    assert written[-1].percent == 0.0 and written[-1].epoch == 0 and written[-1].total_epochs == 4
    clock.now += 2
    report.epoch(1, {"val_loss": 0.5, "train_loss": float("nan")})
    assert len(written) == 1, "2 s after the last report: held back"
    clock.now += 4
    report.epoch(2, {"val_loss": 0.4})
    assert len(written) == 2
    assert written[-1] == TrainingProgress(
        epoch=2,
        total_epochs=4,
        step=20,
        percent=50.0,
        eta_seconds=6.0,  # 6 s for two epochs, two to go
        metrics={"val_loss": 0.4},
        updated=NOON,
    )
    clock.now += 1
    report.epoch(3, {"val_loss": 0.3})
    assert len(written) == 2
    report.flush()  # the run ends: the held-back report goes out
    assert written[-1].epoch == 3 and written[-1].percent == 75.0
    report.flush()
    assert len(written) == 3, "nothing held back: nothing written"


def test_finished_is_written_at_once_with_the_final_metrics() -> None:
    clock, written = Clock(), list[TrainingProgress]()
    report = reporter(Plan(total_epochs=10), clock, written)
    report.epoch(2, {"val_loss": 0.4})  # early stopping after 2 of 10
    report.finished({"test_f1": 0.9})
    assert (written[-1].percent, written[-1].eta_seconds, written[-1].epoch) == (100.0, 0.0, 2)
    assert written[-1].metrics == {"test_f1": 0.9}


def test_trials_are_counted_by_state() -> None:
    clock, written = Clock(), list[TrainingProgress]()
    report = reporter(Plan(total_trials=4), clock, written)
    report.begin()
    report.trial_started()
    report.trial_started()
    clock.now += 10
    report.trial_finished("COMPLETE", {"val_f1": 0.8})
    clock.now += 10
    report.trial_finished("PRUNED", {})
    report.flush()
    last = written[-1]
    assert last.trials == TrialCounts(total=4, running=0, complete=1, pruned=1, failed=0)
    assert (last.percent, last.eta_seconds, last.metrics) == (50.0, 20.0, {"val_f1": 0.8})


def test_a_failing_write_never_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(_: str) -> None:
        raise ConnectionError("MLflow is down")

    ProgressReporter(broken, Plan(total_epochs=2)).epoch(1, {})
    assert "MLflow is down" in capsys.readouterr().err


def test_the_plan_follows_the_spec() -> None:
    torch = TrainingJobSpec.model_validate(
        {
            "dataset": {"uri": "/d.parquet"},
            "builtin": {"algorithm": "mlp"},
            "hyperparameters": {"epochs": 7, "batchSize": 16},
        }
    )
    assert plan_for(torch, train_rows=100, world_size=4) == Plan(total_epochs=7, steps_per_epoch=2)
    trees = TrainingJobSpec.model_validate({"dataset": {"uri": "/d.parquet"}})
    assert plan_for(trees, 100, 1) == Plan()
