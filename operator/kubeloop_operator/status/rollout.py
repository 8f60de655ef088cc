"""The Progressing condition of a ModelDeployment with a canary, derived from its rollout."""

from __future__ import annotations

from kubeloop.api.common import Condition
from kubeloop.api.deployment_status import RolloutStatus
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition

# phase -> (condition status, reason); Paused is Unknown as a paused Deployment's Progressing is
BY_PHASE: dict[str, tuple[bool | None, str]] = {
    "Idle": (False, reasons.PROMETHEUS_NOT_CONFIGURED),
    "Progressing": (True, reasons.STEP_PROGRESSING),
    "Paused": (None, reasons.ROLLOUT_PAUSED),
    "Inconclusive": (True, reasons.ANALYSIS_INCONCLUSIVE),
    "Promoting": (True, reasons.PROMOTING),
    "Promoted": (True, reasons.PROMOTED),
    "RolledBack": (False, reasons.ROLLED_BACK),
    "Aborted": (False, reasons.ABORTED),
}


def rollout_condition(
    conditions: list[Condition],
    rollout: RolloutStatus | None,
    fixed_weight: bool,
    problem: tuple[str, str] | None,
    generation: int,
) -> list[Condition]:
    """Progressing while a canary exists (none without one). A `problem` (metrics or registry
    unreachable) makes it Unknown, the rollout held where it is."""
    if rollout is None:
        return [c for c in conditions if c.type != reasons.PROGRESSING]
    status, reason = BY_PHASE[rollout.phase]
    message = rollout.message
    if problem is not None:
        status, reason, message = None, problem[0], problem[1]
    elif rollout.phase == "Progressing" and rollout.weight == 0:
        reason = reasons.CANARY_PENDING
    elif rollout.phase == "Progressing" and fixed_weight:
        reason = reasons.FIXED_WEIGHT
    return set_condition(conditions, reasons.PROGRESSING, status, reason, message, generation)
