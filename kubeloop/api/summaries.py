"""What a finished pod hands back to the operator through its termination message (<= 4096 bytes)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from kubeloop.api.challenge import ChallengeResult
from kubeloop.api.common import ApiModel
from kubeloop.api.data_sources import Provenance
from kubeloop.api.drift import FeatureResult
from kubeloop.api.fairness import FairnessResult
from kubeloop.api.performance import PerformanceResult
from kubeloop.api.training import RegisteredModel, Trial

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096


class DriftSummary(ApiModel):
    """The verdict of one drift check."""

    kind: str = "DriftSummary"
    drift_share: float
    dataset_drift: bool
    features: list[FeatureResult]
    rows_reference: int
    rows_current: int
    report_uri: str | None = None
    performance: PerformanceResult | None = None


class TrainingSummary(ApiModel):
    """The outcome of one training run."""

    kind: str = "TrainingSummary"
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    best_trial: Trial | None = None
    registered_model: RegisteredModel | None = None
    challenge: ChallengeResult | None = None
    fairness: FairnessResult | None = None
    provenance: Provenance | None = None
    failure_reason: str | None = None
    message: str | None = None


def encode(summary: DriftSummary | TrainingSummary) -> str:
    """Compact JSON that fits a termination message; long metric maps are cut, never the verdict."""
    text = summary.model_dump_json(by_alias=True, exclude_none=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    trimmed = summary.model_copy()
    if isinstance(trimmed, DriftSummary):
        if trimmed.performance is not None:  # per-group details go first, the verdicts stay
            trimmed.performance = trimmed.performance.model_copy(update={"groups": []})
        trimmed.features = sorted(trimmed.features, key=lambda f: (not f.drifted, -f.score))
        while (
            trimmed.features
            and len(trimmed.model_dump_json(by_alias=True).encode()) > TERMINATION_MESSAGE_LIMIT
        ):
            trimmed.features = trimmed.features[:-1]
    else:
        trimmed.metrics = dict(sorted(trimmed.metrics.items())[:20])
        trimmed.message = (trimmed.message or "")[:512] or None
        if trimmed.challenge is not None:  # the verdict stays; only its explanation is cut
            trimmed.challenge = trimmed.challenge.model_copy(
                update={"message": trimmed.challenge.message[:512]}
            )
        if trimmed.provenance is not None and trimmed.provenance.data is not None:  # the digests stay
            data = trimmed.provenance.data
            cut = data.model_copy(update={"requested": data.requested[:512]})
            trimmed.provenance = trimmed.provenance.model_copy(update={"data": cut})
        if trimmed.fairness is not None:
            trimmed.fairness = _fit_fairness(trimmed, trimmed.fairness)
    return trimmed.model_dump_json(by_alias=True, exclude_none=True)


def _fit_fairness(summary: TrainingSummary, fairness: FairnessResult) -> FairnessResult:
    """The verdict and the differences stay; the smallest groups go first (the message names the worst)."""
    fairness = fairness.model_copy(update={"message": fairness.message[:1024]})
    while fairness.groups:
        candidate = summary.model_copy(update={"fairness": fairness})
        size = len(candidate.model_dump_json(by_alias=True, exclude_none=True).encode())
        if size <= TERMINATION_MESSAGE_LIMIT:
            break
        fairness = fairness.model_copy(
            update={"groups": fairness.groups[:-1], "groups_omitted": fairness.groups_omitted + 1}
        )
    return fairness


def write_termination_message(
    summary: DriftSummary | TrainingSummary, path: str = TERMINATION_MESSAGE_PATH
) -> None:
    """Best effort: outside Kubernetes the path may not be writable, and that is fine."""
    with contextlib.suppress(OSError):
        Path(path).write_text(encode(summary))


def decode(text: str) -> DriftSummary | TrainingSummary | None:
    """The summary a pod left, or None when the message is not one of ours."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("kind")
    if kind == "DriftSummary":
        return DriftSummary.model_validate(data)
    if kind == "TrainingSummary":
        return TrainingSummary.model_validate(data)
    return None
