"""The fairness gate's API: what the models refuse is what the CRD's CEL rules refuse, with the same
messages; the verdict survives a termination message that must be cut, and fits the status schema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.fairness import (
    FAIRNESS_NEEDS_BUILTIN,
    FAIRNESS_SPEC_RULES,
    NEEDS_A_THRESHOLD,
    NEEDS_CLASSIFICATION,
    NOT_THE_TARGET,
    FairnessResult,
    FairnessThresholds,
    GroupMetrics,
)
from kubeloop.api.summaries import TrainingSummary, decode, encode
from kubeloop.api.training import TrainingJobSpec

pytestmark = pytest.mark.unit


def spec(**changes: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "dataset": {"uri": "s3://data/loans.parquet", "targetColumn": "approved"},
        "fairness": {
            "sensitiveAttributes": ["sex", "age_band"],
            "thresholds": {"demographicParityDifference": 0.1, "equalizedOddsDifference": 0.1},
        },
    }
    for path, value in changes.items():
        node = wire
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return wire


def schema_of_spec() -> dict[str, Any]:
    schema: dict[str, Any] = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_a_fairness_gate_parses_with_defaults() -> None:
    parsed = TrainingJobSpec.model_validate(spec())
    assert parsed.fairness is not None
    assert (parsed.fairness.min_group_size, parsed.fairness.positive_class) == (30, None)
    one = TrainingJobSpec.model_validate(spec(**{"fairness.thresholds": {"equalizedOddsDifference": 0}}))
    assert one.fairness is not None and one.fairness.thresholds.demographic_parity_difference is None
    assert TrainingJobSpec.model_validate(spec(fairness=None)).fairness is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"builtin.task": "regression"}, NEEDS_CLASSIFICATION),
        ({"command": ["python", "train.py"]}, FAIRNESS_NEEDS_BUILTIN),
        ({"fairness.sensitiveAttributes": ["sex", "approved"]}, NOT_THE_TARGET),
        ({"dataset.targetColumn": None, "fairness.sensitiveAttributes": ["label"]}, NOT_THE_TARGET),
        ({"fairness.thresholds": {}}, NEEDS_A_THRESHOLD),
        ({"fairness.sensitiveAttributes": ["sex", "sex"]}, "names a column twice"),
        ({"fairness.sensitiveAttributes": []}, "at least 1 item"),
        ({"fairness.sensitiveAttributes": [""]}, "at least 1 character"),
        ({"fairness.sensitiveAttributes": [f"c{i}" for i in range(9)]}, "at most 8 items"),
        ({"fairness.thresholds.demographicParityDifference": 1.5}, "less than or equal to 1"),
        ({"fairness.thresholds.equalizedOddsDifference": -0.1}, "greater than or equal to 0"),
        ({"fairness.minGroupSize": 0}, "greater than or equal to 1"),
        ({"fairness.groups": ["sex"]}, "Extra inputs are not permitted"),
    ],
)
def test_refused_fairness_gates(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingJobSpec.model_validate(spec(**changes))


def test_the_crd_carries_the_same_rules_and_messages() -> None:
    root = schema_of_spec()
    spec_node = root["properties"]["spec"]
    rules = {(r["rule"], r["message"]) for r in spec_node["x-kubernetes-validations"]}
    assert {(r["rule"], r["message"]) for r in FAIRNESS_SPEC_RULES} <= rules
    fairness = spec_node["properties"]["fairness"]
    assert fairness["required"] == ["sensitiveAttributes", "thresholds"]
    attributes = fairness["properties"]["sensitiveAttributes"]
    assert attributes["x-kubernetes-list-type"] == "set"  # the API server refuses duplicates
    assert (attributes["maxItems"], attributes["items"]["maxLength"]) == (8, 253)  # bounds the CEL cost
    thresholds = fairness["properties"]["thresholds"]
    assert thresholds["x-kubernetes-validations"][0]["message"] == NEEDS_A_THRESHOLD
    assert fairness["properties"]["minGroupSize"]["default"] == 30
    assert spec_node["properties"]["importance"]["properties"]["sampleRows"]["default"] == 200
    status = root["properties"]["status"]["properties"]["fairness"]
    assert {"outcome", "groups", "demographicParityDifference", "equalizedOddsDifference"} <= set(
        status["properties"]
    )
    columns = {c["name"]: c for c in crd("TrainingJob")["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert (
        columns["Fairness"]["jsonPath"] == ".status.fairness.outcome"
        and "priority" not in columns["Fairness"]
    )
    assert columns["DPD"]["priority"] == columns["EOD"]["priority"] == 1


def test_the_verdict_survives_a_termination_message_that_must_be_cut() -> None:
    groups = [
        GroupMetrics(
            group=f"region=r{i:03d}, sex=F",
            count=1000 - i,
            accuracy=0.9,
            selection_rate=0.5,
            true_positive_rate=0.8,
            false_positive_rate=0.1,
        )
        for i in range(100)
    ]
    verdict = FairnessResult(
        outcome="Failed",
        sensitive_attributes=["region", "sex"],
        positive_class="approved",
        rows=100_000,
        min_group_size=30,
        demographic_parity_difference=0.25,
        equalized_odds_difference=0.125,
        thresholds=FairnessThresholds(demographic_parity_difference=0.1),
        groups=groups,
        message="fairness threshold exceeded: " + "x" * 3000,
    )
    summary = TrainingSummary(metrics={f"m{i}": float(i) for i in range(100)}, fairness=verdict)
    text = encode(summary)
    assert len(text.encode()) <= 4096
    decoded = decode(text)
    assert isinstance(decoded, TrainingSummary) and decoded.fairness is not None
    kept = decoded.fairness
    assert kept.model_dump(exclude={"groups", "groups_omitted", "message"}) == verdict.model_dump(
        exclude={"groups", "groups_omitted", "message"}
    )
    assert 0 < len(kept.groups) < 100 and kept.groups_omitted == 100 - len(kept.groups)
    assert kept.groups == groups[: len(kept.groups)]  # the largest groups stay
    assert kept.message.startswith("fairness threshold exceeded")
    small = TrainingSummary(fairness=verdict.model_copy(update={"groups": groups[:2], "message": "short"}))
    assert decode(encode(small)) == small  # nothing is cut when it fits
