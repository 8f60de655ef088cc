"""The fairness gate in a run: the exported model's predictions on the test split, judged by
`kubeloop_trainer.fairness`, recorded in MLflow (metrics, tags, the per-group table as a JSON
artifact). The verdict decides whether the model is registered at all."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kubeloop.api.fairness import Fairness, FairnessResult
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.onnx_export import onnx_outputs
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.splits import Part
from kubeloop_trainer.tags import FAIRNESS_MESSAGE_TAG, FAIRNESS_TAG
from kubeloop_trainer.tracking import metric_name

if TYPE_CHECKING:
    from kubeloop_trainer.fairness import FairnessReport

ARTIFACT = "fairness/groups.json"
PREFIX = "fairness."
MAX_GROUP_METRICS = 50  # per-group metric series; the artifact has every group


def fairness_params(fairness: Fairness) -> dict[str, object]:
    return {
        "fairness.sensitive_attributes": json.dumps(fairness.sensitive_attributes),
        "fairness.thresholds": fairness.thresholds.model_dump_json(by_alias=True, exclude_none=True),
        "fairness.min_group_size": fairness.min_group_size,
    }


def fairness_metrics(result: FairnessResult) -> dict[str, float]:
    """The differences, group counts, and the shown class's per-group metrics."""
    metrics: dict[str, float] = {
        f"{PREFIX}groups": len(result.groups),
        f"{PREFIX}groups_excluded": sum(g.excluded for g in result.groups),
    }
    if result.demographic_parity_difference is not None:
        metrics[f"{PREFIX}demographic_parity_difference"] = result.demographic_parity_difference
    if result.equalized_odds_difference is not None:
        metrics[f"{PREFIX}equalized_odds_difference"] = result.equalized_odds_difference
    for group in result.groups[:MAX_GROUP_METRICS]:
        base = f"{PREFIX}group.{metric_name(group.group)}."
        metrics |= {
            f"{base}count": group.count,
            f"{base}accuracy": group.accuracy,
            f"{base}selection_rate": group.selection_rate,
            f"{base}true_positive_rate": group.true_positive_rate,
            f"{base}false_positive_rate": group.false_positive_rate,
        }
    return metrics


def fairness_tags(result: FairnessResult | None) -> dict[str, str]:
    """For the run and a registered version."""
    if result is None:
        return {}
    return {FAIRNESS_TAG: result.outcome, FAIRNESS_MESSAGE_TAG: result.message}


def fairness_artifact(report: FairnessReport) -> str:
    """Every positive class's groups and differences, with the verdict: the JSON artifact."""
    document: dict[str, Any] = report.result.model_dump(by_alias=True, mode="json", exclude={"groups"})
    document["perClass"] = [
        {
            "positiveClass": part.positive_class,
            "demographicParityDifference": part.demographic_parity_difference,
            "equalizedOddsDifference": part.equalized_odds_difference,
            "groups": [g.model_dump(by_alias=True, mode="json") for g in part.groups],
        }
        for part in report.per_class
    ]
    return json.dumps(document, indent=2)


def run_fairness(
    fairness: Fairness, onnx_bytes: bytes, test: Part, classes: list[Any], recorder: Recorder
) -> FairnessResult:
    """Judge the served model (the ONNX bytes) on the test rows and record the verdict."""
    from kubeloop_trainer.fairness import assess  # the fairness extra: only gated runs need fairlearn

    if test.sensitive is None:  # prepare() carries them whenever the spec has a fairness gate
        raise BadDataError("the test split lost its sensitive attributes")
    probabilities = onnx_outputs(onnx_bytes, test.x, "classification")
    report = assess(fairness, test.y, probabilities, test.sensitive, classes)
    result = report.result
    recorder.metrics(fairness_metrics(result))
    recorder.tags(fairness_tags(result))
    recorder.text(fairness_artifact(report), ARTIFACT)
    recorder.progress.say(f"fairness gate {result.outcome}: {result.message}")
    return result
