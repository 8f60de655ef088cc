"""The ChallengerGate condition of a TrainingJob, from the verdict its trainer reported.

True (ChampionBeaten, NoChampion): the new version got register.alias and may roll out.
False (ChampionNotBeaten, ChampionNotComparable): it was registered without the alias; nothing
moved. Unknown: no verdict yet (AwaitingEvaluation) or none to come (NotEvaluated: the run failed).
"""

from __future__ import annotations

from kubeloop.api.challenge import ChallengeResult, GateOutcome
from kubeloop.api.common import Condition
from kubeloop.api.training import RegisteredModel, TrainingPhase
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition

REASON_OF: dict[GateOutcome, str] = {
    "Passed": reasons.CHAMPION_BEATEN,
    "FirstModel": reasons.NO_CHAMPION,
    "NotBeaten": reasons.CHAMPION_NOT_BEATEN,
    "NotComparable": reasons.CHAMPION_NOT_COMPARABLE,
}


def gate_condition(
    conditions: list[Condition],
    result: ChallengeResult | None,
    challenged: bool,
    phase: TrainingPhase,
    generation: int,
) -> list[Condition]:
    """``conditions`` with ChallengerGate set from ``result`` (dropped when the spec has no challenge)."""
    if result is not None:
        reason = REASON_OF[result.outcome]
        return set_condition(
            conditions, reasons.CHALLENGER_GATE, result.passed, reason, result.message, generation
        )
    if not challenged:
        return [c for c in conditions if c.type != reasons.CHALLENGER_GATE]
    if phase in ("Failed", "Succeeded"):
        message = "the run ended without a gate verdict; nothing was registered under the challenger alias"
        return set_condition(
            conditions, reasons.CHALLENGER_GATE, None, reasons.NOT_EVALUATED, message, generation
        )
    message = "the new model is compared with the champion after training"
    return set_condition(
        conditions, reasons.CHALLENGER_GATE, None, reasons.AWAITING_EVALUATION, message, generation
    )


def registered_message(registered: RegisteredModel | None, result: ChallengeResult | None) -> str:
    """The Succeeded condition's message: what was registered, and whether the alias moved."""
    if registered is None:
        return "training completed"
    message = f"registered {registered.name} version {registered.version}"
    if registered.alias:
        return f"{message} as {registered.alias}"
    if result is not None and not result.passed:
        return f"{message} without alias: {result.message}"
    return message
