"""The canary's step machine: pure functions from the previous RolloutStatus and what was observed to the
next one. Time is an input (`now`), and every moment the machine waits for is kept in the status, so a
restarted operator takes up where it was (level-triggered: any reconcile may call these).

    Progressing --canary Ready--> weight = step's --warm-up + interval--> analysis:
        pass          -> next step (or Promoting after the last)
        inconclusive  -> held (Inconclusive), analysed again after another interval: too few canary
                         requests, or a configured check that could not be measured
        fail          -> failures + 1; beyond failureLimit -> RolledBack (weight 0)
    Promoting --stable rolled to the canary's version--> Promoted (weight 0)
    paused -> Paused (weight held); abort -> Aborted (weight 0); a new canary model starts afresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubeloop.api.deployment import Canary, CanaryAnalysis
from kubeloop.api.deployment_status import TERMINAL_PHASES, CheckResult, RolloutStatus
from kubeloop_operator.rollout.checks import Verdict, describe, unmeasured

ANALYSED_PHASES = ("Progressing", "Inconclusive")


@dataclass(frozen=True)
class Observed:
    """What the reconcile saw this pass."""

    now: datetime
    canary_uri: str  # the canary model served (its identity: a new one is a new rollout)
    canary_version: str | None
    # the canary Deployment has a ready replica of its current template; None: not known this pass (the
    # Deployment controller has not yet observed its latest spec, a scale say): the weight is held
    canary_ready: bool | None
    stable_promoted: bool  # the stable Deployment has rolled out serving the canary's model
    prometheus: bool  # the operator has a Prometheus to ask


def fresh(observed: Observed, analysis: CanaryAnalysis | None) -> RolloutStatus:
    return RolloutStatus(
        phase="Progressing",
        canary_uri=observed.canary_uri,
        canary_version=observed.canary_version,
        step=1 if analysis is not None else 0,
        message="waiting for the canary to be ready",
    )


def end(rollout: RolloutStatus, phase: str, message: str, now: datetime) -> RolloutStatus:
    """Weight 0; the canary keeps running until the new routes have reached every stable server."""
    return rollout.model_copy(
        update={"phase": phase, "weight": 0, "weight_zero_since": now, "message": message}
    )


def advance(canary: Canary, previous: RolloutStatus | None, observed: Observed) -> RolloutStatus:
    """Everything but the analysis itself: a new canary, abort, pause, Ready gating, step start,
    the end of a promotion."""
    analysis, now = canary.analysis, observed.now
    rollout = previous
    if rollout is None or rollout.canary_uri != observed.canary_uri:
        rollout = fresh(observed, analysis)
    rollout = rollout.model_copy(update={"canary_version": observed.canary_version})
    if rollout.phase in ("Promoted", "RolledBack"):
        return rollout  # not retried until the canary model changes
    if rollout.phase == "Aborted":
        if canary.abort:
            return rollout
        rollout = fresh(observed, analysis)  # abort unset: start again
    if canary.abort:
        return end(rollout, "Aborted", f"aborted at step {rollout.step}, weight {rollout.weight}%", now)
    if rollout.phase == "Promoting":
        if observed.stable_promoted:
            return end(rollout, "Promoted", f"stable serves {version_of(rollout)}", now)
        return gated(rollout, analysis.steps[-1] if analysis else rollout.weight, observed)
    if analysis is None:
        target = canary.traffic_percent or 0
        if canary.paused:
            return pause(rollout, f"paused at weight {held(rollout)}% (fixed weight {target}%)", observed)
        message = f"fixed weight {target}% (no analysis)"
        update = {"phase": "Progressing", "step": 0, "held_weight": None, "message": message}
        return gated(rollout.model_copy(update=update), target, observed)
    if not observed.prometheus:
        message = "canary analysis needs a Prometheus: set the operator's prometheusUrl"
        return rollout.model_copy(
            update={"phase": "Idle", "weight": 0, "step_started_at": None, "message": message}
        )
    if canary.paused:
        return pause(rollout, f"paused at step {rollout.step}, weight {held(rollout)}%", observed)
    step = min(max(rollout.step, 1), len(analysis.steps))  # the steps may have been edited
    rollout = rollout.model_copy(update={"step": step})
    if rollout.phase in ("Paused", "Idle"):  # resumed: the window starts now (no second warm-up)
        resumed = rollout.step_started_at is not None and rollout.weight > 0
        update = {
            "phase": "Progressing",
            "held_weight": None,
            "window_start": now if resumed else None,
            "analyzed_at": None,
        }
        rollout = rollout.model_copy(update=update)
    return start_step(rollout, analysis, observed)


def held(rollout: RolloutStatus) -> int:
    """The weight a pause holds: the weight when it began (kept apart from `weight`, which the readiness
    gate may set to 0 for a while)."""
    if rollout.phase == "Paused" and rollout.held_weight is not None:
        return rollout.held_weight
    return rollout.weight


def pause(rollout: RolloutStatus, message: str, observed: Observed) -> RolloutStatus:
    weight = held(rollout)
    if weight > 0 and observed.canary_ready is False:
        message += ", once the canary has a ready replica again (weight 0 until then)"
    update = {"phase": "Paused", "held_weight": weight}
    return gated(rollout.model_copy(update=update), weight, observed).model_copy(update={"message": message})


def gated(rollout: RolloutStatus, weight: int, observed: Observed) -> RolloutStatus:
    """No request reaches a canary without a ready replica (KServe #5983): weight 0 until it has one;
    the weight as it was while that is not known."""
    if observed.canary_ready is None:
        return rollout
    if observed.canary_ready:
        return rollout.model_copy(update={"weight": weight})
    message = rollout.message if rollout.weight == 0 else "the canary has no ready replica: weight 0"
    return rollout.model_copy(update={"weight": 0, "message": message})


def start_step(rollout: RolloutStatus, analysis: CanaryAnalysis, observed: Observed) -> RolloutStatus:
    """The step's weight is written once the canary is ready; the step (and its warm-up) starts then."""
    target = analysis.steps[rollout.step - 1]
    if observed.canary_ready is None:
        return rollout  # neither started nor restarted on what is not known
    if not observed.canary_ready:
        if rollout.weight == 0 and rollout.step_started_at is None:
            return rollout
        return rollout.model_copy(
            update={
                "weight": 0,
                "step_started_at": None,
                "window_start": None,
                "message": f"step {rollout.step} restarts once the canary has a ready replica again",
            }
        )
    if rollout.weight == target and rollout.step_started_at is not None:
        return rollout
    now = observed.now
    return rollout.model_copy(
        update={
            "weight": target,
            "step_started_at": now,
            "window_start": now + timedelta(seconds=analysis.warmup_seconds),
            "analyzed_at": None,
            "message": f"step {rollout.step}/{len(analysis.steps)}: weight {target}%",
        }
    )


def due(rollout: RolloutStatus, analysis: CanaryAnalysis, now: datetime) -> bool:
    """An interval has passed since the window started (after warm-up) and since the last analysis."""
    if rollout.phase not in ANALYSED_PHASES or rollout.weight == 0 or rollout.window_start is None:
        return False
    interval = timedelta(seconds=analysis.interval_seconds)
    last = rollout.analyzed_at or rollout.window_start
    return now >= rollout.window_start + interval and now >= last + interval


def window_seconds(rollout: RolloutStatus, now: datetime) -> int:
    assert rollout.window_start is not None
    return max(1, math.ceil((now - rollout.window_start).total_seconds()))


def judge(
    rollout: RolloutStatus,
    analysis: CanaryAnalysis,
    results: list[CheckResult],
    outcome: Verdict,
    requests: float,
    now: datetime,
) -> RolloutStatus:
    """The analysis of the current window: hold, count a failure (or roll back), or move on."""
    base = rollout.model_copy(update={"checks": results, "analyzed_at": now})
    step, steps = rollout.step, analysis.steps
    if outcome == "inconclusive":
        if requests < analysis.min_requests:
            why = f"{requests:.0f} canary requests since the window began, fewer than minRequests"
            why += f" {analysis.min_requests}"
        else:
            names = ", ".join(unmeasured(results))
            why = f"{names} not measured in the window (no stable traffic to compare with, or no series)"
        message = f"step {step}: {why}: held"
        return base.model_copy(update={"phase": "Inconclusive", "message": message})
    if outcome == "fail":
        failures = rollout.failures + 1
        failed = f"{describe(results)} at step {step} (weight {rollout.weight}%)"
        if failures > analysis.failure_limit:
            return end(base.model_copy(update={"failures": failures}), "RolledBack", failed, now)
        message = f"{failed}: failure {failures} of {analysis.failure_limit} tolerated"
        update = {"phase": "Progressing", "failures": failures, "window_start": now, "message": message}
        return base.model_copy(update=update)
    if step >= len(steps):
        message = f"all {len(steps)} steps passed: promoting {version_of(rollout)}"
        return base.model_copy(update={"phase": "Promoting", "message": message})
    target = steps[step]
    return base.model_copy(
        update={
            "phase": "Progressing",
            "step": step + 1,
            "weight": target,
            "step_started_at": now,
            "window_start": now + timedelta(seconds=analysis.warmup_seconds),
            "analyzed_at": None,
            "message": f"step {step + 1}/{len(steps)}: weight {target}%",
        }
    )


def version_of(rollout: RolloutStatus) -> str:
    return f"version {rollout.canary_version}" if rollout.canary_version else str(rollout.canary_uri)


def sizing_weight(canary: Canary, rollout: RolloutStatus) -> int | None:
    """The share of load the canary's replicas are sized for; None: keep its replicas as they are
    (it is being drained after its weight went to 0)."""
    if rollout.phase in TERMINAL_PHASES:
        return None
    if rollout.phase == "Idle":
        return 0
    if canary.analysis is None:
        return canary.traffic_percent or 0
    if rollout.phase == "Promoting":
        return rollout.weight or canary.analysis.steps[-1]
    return canary.analysis.steps[max(rollout.step, 1) - 1]


def drained(rollout: RolloutStatus, now: datetime, propagation_seconds: float) -> bool:
    """Weight 0 has had time to reach every stable server: the canary may go."""
    since = rollout.weight_zero_since
    return since is None or now >= since + timedelta(seconds=propagation_seconds)


def canary_replicas(stable_replicas: int, weight: int, most: int) -> int:
    """Replicas for `weight` percent of the stable track's load: ceil(stable * weight / 100), at least 1
    while the weight is above 0, at most replicas.max."""
    if weight <= 0:
        return 0
    return min(most, max(1, math.ceil(stable_replicas * weight / 100)))
