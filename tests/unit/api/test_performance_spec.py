"""spec.performance: what the model refuses, the CRD refuses too (CEL rules with the same messages)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.performance import (
    PERFORMANCE_RULES,
    GroupPerformance,
    MetricValue,
    PerformanceConfig,
    PerformanceResult,
)
from kubeloop.api.summaries import DriftSummary, decode, encode

pytestmark = pytest.mark.unit
LABELS = "s3://labels/churn"


def config(**fields: Any) -> PerformanceConfig:
    return PerformanceConfig.model_validate({"labelsUri": LABELS, "task": "binary", **fields})


def test_a_full_binary_config_and_its_defaults() -> None:
    full = config(
        score="probabilities.1",
        maturity="24h",
        metrics=[{"metric": "accuracy", "threshold": 0.8}, {"metric": "roc_auc"}],
        sensitiveAttributes=["sex", "age_band"],
        fairness=[{"metric": "equalized_odds_difference", "max": 0.1}],
    )
    assert full.metric_names() == ["accuracy", "roc_auc"] and full.threshold_of("accuracy") == 0.8
    assert config().metric_names() == ["accuracy", "f1"]
    assert config(score="p.1").metric_names() == ["accuracy", "f1", "roc_auc"]
    regression = PerformanceConfig.model_validate({"labelsUri": LABELS, "task": "regression"})
    assert regression.metric_names() == ["mae", "rmse"] and regression.maturity == "1h"
    assert config(maturity="0").maturity == "0"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "regression", "metrics": [{"metric": "accuracy"}]}, PERFORMANCE_RULES[0]["message"]),
        ({"metrics": [{"metric": "rmse"}]}, PERFORMANCE_RULES[1]["message"]),
        (
            {"task": "multiclass", "fairness": [{"metric": "demographic_parity_difference", "max": 0.1}]},
            PERFORMANCE_RULES[2]["message"],
        ),
        ({"metrics": [{"metric": "roc_auc"}]}, PERFORMANCE_RULES[3]["message"]),
        ({"metrics": [{"metric": "f1"}, {"metric": "f1"}]}, "each metric at most once"),
        ({"sensitiveAttributes": ["bad name"]}, "not a valid attribute name"),
        ({"maturity": "1w"}, "should match pattern"),
        ({"fairness": [{"metric": "demographic_parity_difference", "max": 2}]}, "less than or equal to 1"),
        ({"minGroupSize": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_configs_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**fields)


def test_the_crd_carries_the_same_rules() -> None:
    schema = crd("DriftMonitor")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    performance = schema["properties"]["spec"]["properties"]["performance"]
    messages = {rule["message"] for rule in performance["x-kubernetes-validations"]}
    assert messages == {rule["message"] for rule in PERFORMANCE_RULES}
    assert performance["required"] == ["task"]
    assert performance["properties"]["task"]["enum"] == ["binary", "multiclass", "regression"]
    status = schema["properties"]["status"]["properties"]
    assert "labelCoverage" in status["performance"]["properties"]


def test_the_termination_message_drops_group_details_first() -> None:
    groups = [
        GroupPerformance(
            attribute="zip", group=f"{i:05d}", rows=100, included=True, metrics={"accuracy": 0.9}
        )
        for i in range(200)
    ]
    metric = MetricValue(metric="accuracy", source="realized", value=0.7, threshold=0.8, breached=True)
    performance = PerformanceResult(
        task="binary", predictions=10, matured=10, labelled=9, metrics=[metric], groups=groups, degraded=True
    )
    summary = DriftSummary(drift_share=0, dataset_drift=False, features=[], rows_reference=1, rows_current=1,
                           performance=performance)  # fmt: skip
    text = encode(summary)
    assert len(text.encode()) <= 4096
    decoded = decode(text)
    assert isinstance(decoded, DriftSummary) and decoded.performance is not None
    assert decoded.performance.groups == [] and decoded.performance.metrics == [metric]
    assert decoded.performance.degraded
