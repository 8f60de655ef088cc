"""The canary step machine and its checks, table-driven: time and Prometheus' answers are inputs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeloop.api.deployment import Canary
from kubeloop.api.deployment_status import RolloutStatus
from kubeloop_operator.rollout import machine
from kubeloop_operator.rollout.checks import Measurement, TrackWindow, evaluate, psi, verdict

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
URI = "models:/churn/9"
STEPS = [5, 10, 25, 50]

HEALTHY = TrackWindow(requests=1000, errors=1, p99_seconds=0.05, outputs={"0": 480, "1": 520})
STABLE = TrackWindow(requests=9000, errors=9, p99_seconds=0.05, outputs={"0": 4500, "1": 4500})
FAILING = TrackWindow(requests=1000, errors=300, p99_seconds=0.05, outputs={"0": 500, "1": 500})
SLOW = TrackWindow(requests=1000, errors=0, p99_seconds=2.0, outputs={"0": 500, "1": 500})
DIFFERENT = TrackWindow(requests=1000, errors=0, p99_seconds=0.05, outputs={"0": 900, "1": 100})
QUIET = TrackWindow(requests=20, errors=0, p99_seconds=0.05, outputs={"0": 10, "1": 10})


def canary(**analysis: Any) -> Canary:
    fields = {"steps": STEPS, "intervalSeconds": 60, "warmupSeconds": 30, "minRequests": 100, **analysis}
    checks = fields.pop("checks", {"maxErrorRate": 0.01, "maxP99Seconds": 0.5, "maxOutputPsi": 0.2})
    return Canary.model_validate({"model": {"uri": URI}, "analysis": {**fields, "checks": checks}})


@dataclass
class Run:
    """Drive the machine as the reconcile does, one pass every `tick`, Prometheus answering `traffic`
    (the canary's window for the current step)."""

    spec: Canary
    traffic: Callable[[RolloutStatus], TrackWindow] = lambda _: HEALTHY
    stable: Callable[[], TrackWindow] = lambda: STABLE
    ready: bool | None = True
    prometheus: bool = True
    tick: timedelta = timedelta(seconds=15)
    now: datetime = T0
    rollout: RolloutStatus | None = None
    history: list[RolloutStatus] = field(default_factory=list)

    def once(self) -> RolloutStatus:
        promoted = self.rollout is not None and self.rollout.phase == "Promoting"  # stable rolls at once
        observed = machine.Observed(self.now, URI, "9", self.ready, promoted, self.prometheus)
        rollout = machine.advance(self.spec, self.rollout, observed)
        analysis = self.spec.analysis
        if analysis is not None and machine.due(rollout, analysis, self.now):
            m = Measurement(canary=self.traffic(rollout), stable=self.stable())
            results = evaluate(analysis.checks, m)
            rollout = machine.judge(
                rollout, analysis, results, verdict(analysis, m, results), m.canary.requests, self.now
            )
        self.rollout = rollout
        self.history.append(rollout)
        self.now += self.tick
        return rollout

    def until(self, phases: tuple[str, ...], passes: int = 200) -> RolloutStatus:
        for _ in range(passes):
            if self.once().phase in phases:
                return self.history[-1]
        raise AssertionError(f"never reached {phases}: {self.history[-1]}")

    def weights(self) -> list[int]:
        """The distinct weights in the order they were written."""
        out: list[int] = []
        for r in self.history:
            if not out or out[-1] != r.weight:
                out.append(r.weight)
        return out


def test_a_healthy_canary_walks_every_step_and_is_promoted() -> None:
    run = Run(canary())
    done = run.until(("Promoted",))
    assert run.weights() == [5, 10, 25, 50, 0]
    assert [r.phase for r in run.history if r.phase not in ("Progressing",)][:2] == ["Promoting", "Promoted"]
    assert done.weight == 0 and done.failures == 0 and done.weight_zero_since is not None
    assert {c.name for c in done.checks} == {"errorRate", "p99Seconds", "outputPsi"}
    assert all(c.passed for c in done.checks)
    promoting = next(r for r in run.history if r.phase == "Promoting")
    assert promoting.weight == 50, "the weight stays until stable has rolled to the new version"


def test_each_step_waits_for_warm_up_and_one_interval() -> None:
    run = Run(canary())
    run.until(("Promoting",))
    distinct = sorted({r.step_started_at for r in run.history if r.step_started_at is not None})
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(distinct)]
    assert len(distinct) == 4 and all(gap >= 30 + 60 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("name", "traffic", "check", "value"),
    [
        ("5xx", FAILING, "errorRate", 0.3),
        ("slow", SLOW, "p99Seconds", 2.0),
        ("different outputs", DIFFERENT, "outputPsi", None),
    ],
)
def test_a_bad_canary_is_rolled_back_at_the_first_step_naming_the_check(
    name: str, traffic: TrackWindow, check: str, value: float | None
) -> None:
    run = Run(canary(), traffic=lambda _: traffic)
    done = run.until(("RolledBack",))
    assert run.weights() == [5, 0], name
    assert done.step == 1 and done.weight == 0 and done.failures == 1
    failed = [c for c in done.checks if c.passed is False]
    assert [c.name for c in failed] == [check]
    assert value is None or failed[0].value == pytest.approx(value)
    assert check in done.message and "step 1" in done.message
    for _ in range(20):  # never retried: the same canary model stays rolled back
        assert run.once().phase == "RolledBack" and run.history[-1].weight == 0


def test_relative_checks_compare_with_stable_in_the_same_window() -> None:
    checks = {"maxErrorRateIncrease": 0.01, "maxP99Ratio": 1.5}
    slower = replace(HEALTHY, p99_seconds=0.1)  # twice stable's p99, under any absolute bound
    done = Run(canary(checks=checks), traffic=lambda _: slower).until(("RolledBack",))
    by_name = {c.name: c for c in done.checks}  # with the defaults: errorRate, outputPsi
    assert (by_name["errorRateIncrease"].passed, by_name["p99Ratio"].passed) == (True, False)
    assert by_name["p99Ratio"].value == pytest.approx(2.0) and by_name["errorRate"].passed


def test_only_the_step_where_it_breaks_rolls_it_back() -> None:
    """Errors that appear at 25% (say, under load) roll back at step 3, not before."""
    run = Run(canary(), traffic=lambda r: FAILING if r.weight >= 25 else HEALTHY)
    done = run.until(("RolledBack",))
    assert run.weights() == [5, 10, 25, 0] and done.step == 3


def test_too_little_traffic_is_inconclusive_never_a_pass() -> None:
    run = Run(canary(), traffic=lambda _: QUIET)
    for _ in range(200):
        run.once()
    phases = {r.phase for r in run.history}
    assert phases == {"Progressing", "Inconclusive"}
    assert run.history[-1].step == 1 and run.history[-1].weight == 5 and run.history[-1].failures == 0
    assert "fewer than minRequests 100" in run.history[-1].message


def test_an_inconclusive_step_passes_once_the_window_has_enough_requests() -> None:
    seen: list[int] = []

    def traffic(r: RolloutStatus) -> TrackWindow:
        seen.append(r.step)
        return QUIET if len(seen) < 3 else HEALTHY

    run = Run(canary(), traffic=traffic)
    run.until(("Promoted",))
    assert seen[:3] == [1, 1, 1], "held at step 1 while inconclusive"


def test_failures_up_to_the_limit_are_tolerated() -> None:
    answers = iter([FAILING, HEALTHY, FAILING, FAILING])
    run = Run(canary(failureLimit=2), traffic=lambda _: next(answers, HEALTHY))
    done = run.until(("RolledBack",))
    assert done.failures == 3 and done.step == 2


def test_pause_holds_the_weight_and_resume_goes_on() -> None:
    run = Run(canary())
    run.until(("Progressing",))
    while run.history[-1].step < 2:
        run.once()
    run.spec = run.spec.model_copy(update={"paused": True})
    for _ in range(50):
        assert run.once().phase == "Paused" and run.history[-1].weight == 10
    run.spec = run.spec.model_copy(update={"paused": False})
    run.until(("Promoted",))
    assert run.weights()[-3:] == [25, 50, 0]


def test_a_pause_holds_its_weight_through_a_moment_without_a_ready_canary() -> None:
    run = Run(canary())
    while run.once().step < 2:
        pass
    run.spec = run.spec.model_copy(update={"paused": True})
    assert run.once().weight == 10
    run.ready = False  # its pod is replaced: no request may reach it meanwhile
    gone = run.once()
    assert (gone.phase, gone.weight) == ("Paused", 0) and "ready replica" in gone.message
    run.ready = True
    for _ in range(10):
        back = run.once()
        assert (back.phase, back.weight) == ("Paused", 10), back.message
    assert back.message == "paused at step 2, weight 10%"
    run.spec = run.spec.model_copy(update={"paused": False})
    assert run.once().held_weight is None
    run.until(("Promoted",))


def test_readiness_not_known_for_a_moment_neither_moves_the_weight_nor_restarts_the_step() -> None:
    run = Run(canary())
    while run.once().step < 2:
        pass
    started = run.history[-1].step_started_at
    run.ready = None  # the canary was just scaled: its Deployment's new spec is not observed yet
    for _ in range(3):
        held = run.once()
        assert (held.phase, held.step, held.weight, held.step_started_at) == ("Progressing", 2, 10, started)
    run.ready = True
    run.until(("Promoted",))
    assert run.weights() == [5, 10, 25, 50, 0]
    fresh = Run(canary(), ready=None)
    assert (fresh.once().weight, fresh.history[-1].step_started_at) == (0, None)


def test_a_paused_fixed_weight_is_held_through_a_moment_without_a_ready_canary() -> None:
    run = Run(Canary.model_validate({"model": {"uri": URI}, "trafficPercent": 30}))
    assert run.once().weight == 30
    run.spec = run.spec.model_copy(update={"paused": True, "traffic_percent": 60})
    run.ready = False
    assert (run.once().phase, run.history[-1].weight) == ("Paused", 0)
    run.ready = True
    assert (run.once().phase, run.history[-1].weight) == ("Paused", 30)
    run.spec = run.spec.model_copy(update={"paused": False})
    assert (run.once().phase, run.history[-1].weight) == ("Progressing", 60)


def test_a_promotion_keeps_the_last_steps_weight_through_a_moment_without_a_ready_canary() -> None:
    promoting = RolloutStatus(phase="Promoting", canary_uri=URI, step=len(STEPS), weight=STEPS[-1])
    observed = machine.Observed(T0, URI, "9", False, False, True)
    gone = machine.advance(canary(), promoting, observed)
    assert (gone.phase, gone.weight) == ("Promoting", 0)
    back = machine.advance(canary(), gone, replace(observed, canary_ready=True))
    assert (back.phase, back.weight) == ("Promoting", STEPS[-1])


def test_abort_is_a_rollback_and_unsetting_it_starts_again() -> None:
    run = Run(canary())
    while run.once().step < 3:
        pass
    run.spec = run.spec.model_copy(update={"abort": True})
    aborted = run.once()
    assert aborted.phase == "Aborted" and aborted.weight == 0
    run.spec = run.spec.model_copy(update={"abort": False})
    restarted = run.once()
    assert restarted.phase == "Progressing" and restarted.step == 1 and restarted.weight == 5


def test_no_weight_before_the_canary_is_ready() -> None:
    run = Run(canary(), ready=False)
    for _ in range(20):
        assert run.once().weight == 0 and run.history[-1].step_started_at is None
    run.ready = True
    assert run.once().weight == 5
    run.ready = False  # its pods went away: the weight goes back to 0 at once
    assert run.once().weight == 0


def test_without_prometheus_analysis_holds_the_weight_at_zero() -> None:
    run = Run(canary(), prometheus=False)
    for _ in range(10):
        held = run.once()
        assert held.phase == "Idle" and held.weight == 0 and "Prometheus" in held.message
    run.prometheus = True
    assert run.once().weight == 5


def test_a_new_canary_model_is_a_new_rollout() -> None:
    run = Run(canary(), traffic=lambda _: FAILING)
    rolled_back = run.until(("RolledBack",))
    observed = machine.Observed(run.now, "models:/churn/10", "10", True, False, True)
    fresh = machine.advance(run.spec, rolled_back, observed)
    assert (fresh.phase, fresh.step, fresh.weight, fresh.failures) == ("Progressing", 1, 5, 0)


def test_a_fixed_weight_needs_no_analysis_but_still_a_ready_canary() -> None:
    spec = Canary.model_validate({"model": {"uri": URI}, "trafficPercent": 30})
    observed = machine.Observed(T0, URI, "9", False, False, False)
    assert machine.advance(spec, None, observed).weight == 0
    ready = machine.advance(spec, None, replace(observed, canary_ready=True))
    assert (ready.phase, ready.weight) == ("Progressing", 30)
    assert machine.sizing_weight(spec, ready) == 30


def test_the_canary_is_kept_until_weight_zero_has_propagated() -> None:
    ended = RolloutStatus(phase="RolledBack", weight=0, weight_zero_since=T0)
    assert machine.sizing_weight(canary(), ended) is None
    assert not machine.drained(ended, T0 + timedelta(seconds=89), 90)
    assert machine.drained(ended, T0 + timedelta(seconds=90), 90)


def test_psi() -> None:
    assert psi({"a": 10, "b": 10}, {"a": 50, "b": 50}) == 0
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi({"a": 90, "b": 10}, {"a": 50, "b": 50}) == pytest.approx(expected)
    assert psi({}, {"a": 1}) is None
    assert math.isfinite(psi({"a": 1}, {"b": 1}) or math.inf), "a class one side never saw stays finite"


def test_a_check_that_cannot_be_measured_holds_the_step_never_passes_it() -> None:
    spec = canary(checks={"maxP99Ratio": 2.0, "maxOutputPsi": 0.2})
    assert spec.analysis is not None
    m = Measurement(canary=replace(HEALTHY, outputs={}), stable=replace(STABLE, p99_seconds=math.nan))
    results = evaluate(spec.analysis.checks, m)
    unmeasured = [(r.name, r.value, r.passed) for r in results if r.name != "errorRate"]
    assert unmeasured == [("p99Ratio", None, None), ("outputPsi", None, None)]
    assert verdict(spec.analysis, m, results) == "inconclusive"
    failing = Measurement(canary=replace(FAILING, outputs={}), stable=STABLE)
    assert verdict(spec.analysis, failing, evaluate(spec.analysis.checks, failing)) == "fail"


def test_a_step_without_stable_traffic_is_held_naming_the_relative_checks() -> None:
    """A canary at 100% leaves stable nothing to compare with: held until stable answers again."""
    silent = TrackWindow()
    answers = iter([silent, silent, STABLE])
    checks = {"maxErrorRate": 0.01, "maxErrorRateIncrease": 0.01, "maxOutputPsi": 0.2}
    run = Run(canary(steps=[100], checks=checks), stable=lambda: next(answers, STABLE))
    done = run.until(("Promoted",))
    held = [r for r in run.history if r.phase == "Inconclusive"]
    assert held and held[0].message == (
        "step 1: errorRateIncrease, outputPsi not measured in the window "
        "(no stable traffic to compare with, or no series): held"
    )
    assert all(r.step == 1 and r.weight == 100 for r in held) and done.phase == "Promoted"
