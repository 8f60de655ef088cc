"""The champion/challenger gate, run by the chief after the ONNX export and before registration.

Both models are scored by onnxruntime on the evaluation data (`kubeloop_trainer.evaluation`),
the decision is `kubeloop_trainer.gate.verdict`. What it leaves in MLflow: metrics
``challenge.challenger_<m>`` and ``challenge.champion_<m>`` for every metric of the task, tags
``kubeloop.io/challenge`` (the outcome) and ``kubeloop.io/challenge-message`` on the run, and
the same tags on the model version, which is registered in any case (an audit trail of what
lost): it gets ``register.alias`` only when the gate passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeloop.api.challenge import Challenge, ChallengeResult
from kubeloop_trainer.champion import download_champion, resolve_champion
from kubeloop_trainer.evaluation import EvaluationData, NotComparableError, OnnxModel, score_models
from kubeloop_trainer.gate import verdict
from kubeloop_trainer.tags import CHALLENGE_CHAMPION_TAG, CHALLENGE_MESSAGE_TAG, CHALLENGE_TAG

METRIC_PREFIX = "challenge."


@dataclass(frozen=True)
class GateReport:
    """The verdict and what to record about it."""

    result: ChallengeResult
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        """For the run and the model version."""
        champion = self.result.champion
        if self.result.champion_version is not None:
            champion = f"{champion} (version {self.result.champion_version})"
        return {
            CHALLENGE_TAG: self.result.outcome,
            CHALLENGE_CHAMPION_TAG: champion,
            CHALLENGE_MESSAGE_TAG: self.result.message,
        }


def named(role: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{METRIC_PREFIX}{role}_{name}": value for name, value in metrics.items()}


def score_alone(challenger_onnx: bytes, data: EvaluationData) -> dict[str, float]:
    """The challenger's metrics when the champion cannot be scored (for the record); {} if neither can."""
    try:
        return score_models([OnnxModel.load("challenger", challenger_onnx)], data)[0]
    except NotComparableError:
        return {}


def run_gate(
    challenge: Challenge, data: EvaluationData, challenger_onnx: bytes, tracking_uri: str
) -> GateReport:
    """Score the challenger and the champion on ``data`` and decide."""
    registered = resolve_champion(challenge.champion, tracking_uri)
    version = registered.version if registered else None
    metric, problem = challenge.metric, None
    try:
        models = [OnnxModel.load("challenger", challenger_onnx)]
        if registered is not None:
            models.append(OnnxModel.load("champion", download_champion(registered, tracking_uri)))
        scored = score_models(models, data)
    except NotComparableError as error:
        problem, scored = str(error), [score_alone(challenger_onnx, data)]
    challenger, champion = scored[0], scored[1] if len(scored) > 1 else {}
    if problem is None and metric not in challenger:
        problem = f"{metric} is undefined on the evaluation data (roc_auc needs every class present)"
    result = verdict(
        challenge,
        champion_version=version,
        challenger_score=challenger.get(metric),
        champion_score=champion.get(metric),
        rows=data.rows,
        problem=problem,
    )
    return GateReport(result, {**named("challenger", challenger), **named("champion", champion)})
