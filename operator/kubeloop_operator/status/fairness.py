"""The FairnessGate condition of a TrainingJob, from the verdict its trainer reported.

True (FairnessWithinThresholds): the model was registered. False (FairnessThresholdExceeded,
GroupsTooSmall): it was not registered; the message names the metric, its value, the threshold
and the groups furthest apart. Unknown: no verdict yet (AwaitingEvaluation) or none to come
(NotEvaluated: the run failed before the gate).
"""

from __future__ import annotations

from kubeloop.api.common import Condition
from kubeloop.api.fairness import FairnessOutcome, FairnessResult
from kubeloop.api.training import TrainingPhase
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition

REASON_OF: dict[FairnessOutcome, str] = {
    "Passed": reasons.FAIRNESS_WITHIN_THRESHOLDS,
    "Failed": reasons.FAIRNESS_THRESHOLD_EXCEEDED,
    "NotEvaluable": reasons.GROUPS_TOO_SMALL,
}


def fairness_condition(
    conditions: list[Condition],
    result: FairnessResult | None,
    gated: bool,
    phase: TrainingPhase,
    generation: int,
) -> list[Condition]:
    """``conditions`` with FairnessGate set from ``result`` (dropped when the spec has no fairness gate)."""
    kind = reasons.FAIRNESS_GATE
    if result is not None:
        return set_condition(
            conditions, kind, result.passed, REASON_OF[result.outcome], result.message, generation
        )
    if not gated:
        return [c for c in conditions if c.type != kind]
    if phase in ("Failed", "Succeeded"):
        message = "the run ended without a fairness verdict; nothing was registered"
        return set_condition(conditions, kind, None, reasons.NOT_EVALUATED, message, generation)
    message = "per-group metrics are measured on the test split after training"
    return set_condition(conditions, kind, None, reasons.AWAITING_EVALUATION, message, generation)


def unregistered_message(result: FairnessResult | None) -> str | None:
    """The Succeeded condition's message when the fairness gate kept the model out of the registry."""
    if result is None or result.passed:
        return None
    return f"training completed; the model was not registered: {result.message}"
