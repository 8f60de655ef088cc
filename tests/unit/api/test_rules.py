"""The models refuse what the CRDs refuse: cron ranges, names, label keys, tolerations, quantities,
thresholds outside their test's domain, features configured twice."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubeloop.api.common import Resources, Scheduling, Toleration
from kubeloop.api.crd import crd
from kubeloop.api.cron import CRON_PATTERN, cron_problem
from kubeloop.api.drift import DriftCheckConfig, DriftMonitorSpec, FeatureTest, TrainingJobTemplate
from kubeloop.api.labels import NAME_RULE, label_key_problem, label_value_problem, name_problem
from kubeloop.api.training import TrainingJobSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "schedule",
    [
        "0 * * * *",
        "*/5 1-3 * JAN-MAR mon-fri",
        "0 0 1,15 * ?",
        "59 23 31 12 6",
        "5/10 0 1 jan sun",
        "@hourly",
    ],
)
def test_valid_schedules(schedule: str) -> None:
    assert cron_problem(schedule) is None
    assert re.match(CRON_PATTERN, schedule)


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("60 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 32 * *", "day of month"),
        ("0 0 1 13 *", "month"),
        ("0 0 * * 7", "day of week"),
        ("0 0 L * *", "day of month"),
        ("0 0 * * 1#2", "day of week"),
        ("5-1 * * * *", "backwards"),
        ("0 0 * DEC-JAN *", "backwards"),
        ("*/0 * * * *", "step"),
        ("0 0 * * * *", "five fields"),
        ("0  0 * * *", "five fields"),
        ("@every 1h", "descriptor"),
        ("every hour", "five fields"),
    ],
)
def test_invalid_schedules(schedule: str, why: str) -> None:
    problem = cron_problem(schedule)
    assert problem is not None and why in problem
    with pytest.raises(ValidationError, match="schedule"):
        DriftMonitorSpec.model_validate(
            {"target": {"modelDeployment": "m"}, "reference": {"uri": "/r"}, "schedule": schedule}
        )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789*?/,- JANMONjanmon", max_size=24))
def test_pattern_and_range_check_agree_with_the_model(schedule: str) -> None:
    """The CRD's pattern plus range rule accepts exactly what cron_problem accepts."""
    if cron_problem(schedule) is None:
        assert re.match(CRON_PATTERN, schedule)
    elif re.match(CRON_PATTERN, schedule):
        assert "backwards" in (cron_problem(schedule) or "")


@pytest.mark.parametrize("name", ["m", "churn-v2", "a" * 63])
def test_valid_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["1abc", "a.b", "a" * 64, "A", "a-", "-a", "a_b", ""])
def test_invalid_names(name: str) -> None:
    assert name_problem(name) is not None


def test_every_kind_checks_its_name_at_the_root() -> None:
    for kind in ("TrainingJob", "ModelDeployment", "DriftMonitor"):
        root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert root["x-kubernetes-validations"] == [NAME_RULE]


@pytest.mark.parametrize("key", ["a", "kubernetes.io/os", "example.com/a_b.c", "A-1"])
def test_valid_label_keys(key: str) -> None:
    assert label_key_problem(key) is None
    assert Scheduling(node_selector={key: "v"}).node_selector == {key: "v"}


@pytest.mark.parametrize(
    "key", ["", "a b", "-a", "a/", "/a", "Example.com/a", "a/b/c", "x" * 64, "a" * 254 + "/b"]
)
def test_invalid_label_keys(key: str) -> None:
    assert label_key_problem(key) is not None
    with pytest.raises(ValidationError, match="label key"):
        Scheduling(node_selector={key: "v"})
    with pytest.raises(ValidationError, match="label key"):
        TrainingJobTemplate.model_validate({"labels": {key: "v"}, "spec": {"command": ["x"]}})


@pytest.mark.parametrize("value", ["a b", "-a", "a" * 64, "a/b"])
def test_invalid_label_values(value: str) -> None:
    assert label_value_problem(value) is not None
    with pytest.raises(ValidationError, match="label value"):
        Scheduling(node_selector={"k": value})


@pytest.mark.parametrize(
    ("toleration", "message"),
    [
        ({"operator": "Equal", "value": "x"}, "without a key must use operator Exists"),
        ({}, "without a key must use operator Exists"),
        ({"key": "k", "operator": "Exists", "value": "x"}, "Exists takes no value"),
        ({"key": "k", "value": "v", "tolerationSeconds": 5}, "only to effect NoExecute"),
        ({"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}, "only to effect NoExecute"),
        ({"key": "a b", "value": "v"}, "key"),
        ({"key": "k", "value": "not a value"}, "value"),
    ],
)
def test_contradictory_tolerations(toleration: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Toleration.model_validate(toleration)


def test_valid_tolerations() -> None:
    Toleration.model_validate({"operator": "Exists"})
    Toleration.model_validate(
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    )
    Toleration.model_validate({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"})


@pytest.mark.parametrize("amount", [-1, "-1", "lots", "1.5.2", " 1"])
def test_quantities_are_non_negative_and_well_formed(amount: int | str) -> None:
    with pytest.raises(ValidationError):
        Resources(cpu=amount)
    with pytest.raises(ValidationError):
        Resources(memory=amount)
    assert Resources(cpu=0, memory="4Gi").memory == "4Gi"


@pytest.mark.parametrize("name", ["gpu", "kubernetes.io/gpu", "nvidia.com/", "Nvidia.com/gpu", "a.b/c d"])
def test_gpu_resource_names_are_extended_resource_names(name: str) -> None:
    with pytest.raises(ValidationError):
        Resources(gpu_resource_name=name)


@pytest.mark.parametrize(
    ("test", "threshold", "ok"),
    [
        ("ks", 0.05, True),
        ("ks", 1.0, True),
        ("ks", 1.5, False),
        ("chi2", 2, False),
        ("ks", 0, False),
        ("psi", -0.1, False),
        ("psi", 0, False),
        ("psi", 5, True),
        ("wasserstein", -1, False),
        ("jensenshannon", 0.8, True),
        ("jensenshannon", 0.9, False),
    ],
)
def test_thresholds_within_their_tests_domain(test: str, threshold: float, ok: bool) -> None:
    if ok:
        FeatureTest.model_validate({"feature": "f", "test": test, "threshold": threshold})
    else:
        with pytest.raises(ValidationError, match="threshold"):
            FeatureTest.model_validate({"feature": "f", "test": test, "threshold": threshold})


def test_a_feature_configured_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="'age' is configured twice"):
        DriftCheckConfig.model_validate(
            {"tests": [{"feature": "age", "test": "ks"}, {"feature": "age", "test": "psi"}]}
        )
    with pytest.raises(ValidationError, match="'age' is listed twice"):
        DriftCheckConfig.model_validate({"features": ["age", "city", "age"]})


def test_workers_zero_is_refused_by_its_range_not_the_distributed_rule() -> None:
    spec = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"] if "workers" in r["rule"]]
    assert rules and all(rule.startswith("self.workers <= 1 ||") for rule in rules)
    assert spec["properties"]["workers"]["minimum"] == 1
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        TrainingJobSpec.model_validate({"command": ["x"], "workers": 0})


CANARY_MODEL = {"uri": "models:/churn/2"}


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        ({"trafficPercent": 10, "analysis": {}}, "exactly one of trafficPercent"),
        ({}, "exactly one of trafficPercent"),
        ({"analysis": {"steps": [10, 5]}}, "strictly increasing"),
        ({"analysis": {"steps": [10, 10, 50]}}, "strictly increasing"),
        ({"analysis": {"steps": [0, 50]}}, "greater than or equal to 1"),
        ({"analysis": {"steps": [50, 101]}}, "less than or equal to 100"),
        ({"analysis": {"steps": []}}, "at least 1 item"),
        ({"analysis": {"checks": {"maxErrorRate": 1.5}}}, "less than or equal to 1"),
        ({"analysis": {"checks": {"maxP99Seconds": 0}}}, "greater than 0"),
    ],
)
def test_canary_rules(canary: dict[str, Any], message: str) -> None:
    from kubeloop.api.deployment import Canary

    with pytest.raises(ValidationError, match=message):
        Canary.model_validate({"model": CANARY_MODEL, **canary})


def test_canary_defaults_and_the_rules_in_the_schema() -> None:
    from kubeloop.api.deployment import Canary

    analysed = Canary.model_validate({"model": CANARY_MODEL, "analysis": {}})
    assert analysed.analysis is not None and analysed.analysis.steps == [5, 10, 25, 50]
    assert (analysed.paused, analysed.abort) == (False, False)
    spec = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    canary = spec["properties"]["canary"]
    assert canary["x-kubernetes-validations"][0]["rule"] == "has(self.trafficPercent) != has(self.analysis)"
    steps = canary["properties"]["analysis"]["properties"]["steps"]
    assert "isSorted()" in steps["x-kubernetes-validations"][0]["rule"]
    assert steps["default"] == [5, 10, 25, 50] and steps["items"]["maximum"] == 100
    checks = canary["properties"]["analysis"]["properties"]["checks"]
    assert checks["default"] == {"maxErrorRate": 0.01, "maxOutputPsi": 0.2}


def test_kubectl_get_shows_weight_and_rollout_phase() -> None:
    columns = {
        c["name"]: c["jsonPath"]
        for c in crd("ModelDeployment")["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Weight"] == ".status.rollout.weight" and columns["Rollout"] == ".status.rollout.phase"
