"""The challenger gate's API: what the models refuse is what the CRD's CEL rules refuse, with the
same messages; the verdict round-trips through the trainer's summary into the status schema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.challenge import (
    CHALLENGE_SPEC_RULES,
    CHAMPION_URI_MESSAGE,
    CHAMPION_URI_PATTERN,
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    METRIC_FITS_TASK,
    NEEDS_ALIAS,
    NEEDS_BUILTIN,
    NOT_CHAMPION_ALIAS,
    REGRESSION_METRICS,
    ChallengeResult,
)
from kubeloop.api.crd import crd
from kubeloop.api.drift import TrainingJobTemplate
from kubeloop.api.summaries import TrainingSummary, decode, encode
from kubeloop.api.training import TrainingJobSpec

pytestmark = pytest.mark.unit


def spec(**changes: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "dataset": {"uri": "s3://data/train.parquet"},
        "register": {"modelName": "churn", "alias": "challenger"},
        "challenge": {
            "champion": "models:/churn@champion",
            "dataset": {"uri": "s3://data/holdout.parquet"},
            "metric": "roc_auc",
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


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_node: dict[str, Any] = schema["properties"]["spec"]
    return spec_node


def test_a_full_challenge_parses_with_defaults() -> None:
    parsed = TrainingJobSpec.model_validate(spec())
    assert parsed.challenge is not None
    assert (parsed.challenge.margin, parsed.challenge.dataset.target_column) == (0.0, None)
    pinned = TrainingJobSpec.model_validate(spec(**{"challenge.champion": "models:/churn/3"}))
    assert pinned.challenge is not None and pinned.challenge.champion == "models:/churn/3"
    other_model = spec(**{"challenge.champion": "models:/churn-v1@challenger"})  # another model's alias
    assert TrainingJobSpec.model_validate(other_model).challenge is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"register": None}, NEEDS_ALIAS),
        ({"register.alias": None}, NEEDS_ALIAS),
        ({"command": ["python", "train.py"]}, NEEDS_BUILTIN),
        ({"register.alias": "champion"}, NOT_CHAMPION_ALIAS),
        ({"challenge.metric": "rmse"}, METRIC_FITS_TASK),
        ({"builtin.task": "regression"}, METRIC_FITS_TASK),  # roc_auc on a regression
        ({"challenge.champion": "s3://bucket/model.onnx"}, CHAMPION_URI_MESSAGE),
        ({"challenge.champion": "models:/churn"}, CHAMPION_URI_MESSAGE),
        ({"challenge.champion": "models:/churn/latest"}, CHAMPION_URI_MESSAGE),  # not a fixed model to beat
        ({"challenge.margin": -0.1}, "greater than or equal to 0"),
        ({"challenge.metric": "auc"}, "challenge.metric"),
        ({"challenge.dataset": None}, "challenge.dataset"),
    ],
)
def test_refused_challenges(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainingJobSpec.model_validate(spec(**changes))


def test_regression_takes_regression_metrics() -> None:
    for metric in REGRESSION_METRICS:
        parsed = TrainingJobSpec.model_validate(
            spec(**{"builtin.task": "regression", "challenge.metric": metric})
        )
        assert parsed.challenge is not None and parsed.challenge.metric == metric
    assert set(REGRESSION_METRICS) | set(CLASSIFICATION_METRICS) > LOWER_IS_BETTER


def test_the_crd_carries_the_same_rules_and_messages() -> None:
    schema = spec_schema()
    rules = {(r["rule"], r["message"]) for r in schema["x-kubernetes-validations"]}
    assert {(r["rule"], r["message"]) for r in CHALLENGE_SPEC_RULES} <= rules
    champion = schema["properties"]["challenge"]["properties"]["champion"]
    assert champion["x-kubernetes-validations"] == [
        {"rule": f"self.matches('{CHAMPION_URI_PATTERN}')", "message": CHAMPION_URI_MESSAGE}
    ]
    assert champion["maxLength"] == 512  # bounds the CEL cost
    assert schema["properties"]["challenge"]["required"] == ["champion", "dataset", "metric"]
    columns = {c["name"]: c for c in crd("TrainingJob")["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Gate"]["jsonPath"] == ".status.challenge.outcome"
    assert columns["Challenger"]["priority"] == columns["Champion"]["priority"] == 1


def test_a_retrain_template_carries_the_challenge() -> None:
    """drift -> retrain -> gate: the DriftMonitor's template is a TrainingJobSpec, rules included."""
    template = TrainingJobTemplate.model_validate({"spec": spec()})
    assert template.spec.wire()["challenge"]["champion"] == "models:/churn@champion"
    with pytest.raises(ValidationError, match="must not be the champion's alias"):
        TrainingJobTemplate.model_validate({"spec": spec(**{"register.alias": "champion"})})
    monitor = crd("DriftMonitor")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template_spec = monitor["properties"]["action"]["properties"]["trainingJobTemplate"]["properties"]["spec"]
    assert "challenge" in template_spec["properties"]
    assert {r["message"] for r in CHALLENGE_SPEC_RULES} <= {
        r["message"] for r in template_spec["x-kubernetes-validations"]
    }


def test_the_verdict_survives_a_termination_message_that_must_be_cut() -> None:
    verdict = ChallengeResult(
        outcome="NotBeaten",
        metric="roc_auc",
        direction="maximize",
        champion="models:/churn@champion",
        champion_version="3",
        champion_score=0.9,
        challenger_score=0.5,
        rows=1000,
        message="champion not beaten " + "x" * 2000,
    )
    summary = TrainingSummary(
        metrics={f"metric_{i:03d}": float(i) for i in range(300)}, challenge=verdict, message="y" * 5000
    )
    text = encode(summary)
    assert len(text.encode()) <= 4096
    decoded = decode(text)
    assert isinstance(decoded, TrainingSummary) and decoded.challenge is not None
    assert decoded.challenge.model_dump(exclude={"message"}) == verdict.model_dump(exclude={"message"})
    assert decoded.challenge.message.startswith("champion not beaten")
