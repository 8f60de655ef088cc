"""The API server itself refuses bad resources, with a message that names the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.manifests import drift_monitor, model_deployment, training_job, with_change
from tests.fixtures.cluster import Cluster

pytestmark = pytest.mark.cluster
CHALLENGE = {
    "champion": "models:/churn@champion",
    "dataset": {"uri": "s3://data/holdout.parquet"},
    "metric": "roc_auc",
}


def challenged_job() -> dict[str, Any]:
    """A TrainingJob registering churn@challenger, gated against churn@champion."""
    return with_change(training_job(), "challenge", CHALLENGE)


FAIRNESS = {
    "sensitiveAttributes": ["sex", "age_band"],
    "thresholds": {"demographicParityDifference": 0.1},
}


def fair_job() -> dict[str, Any]:
    """A TrainingJob registered only if it passes the fairness gate."""
    return with_change(training_job(), "fairness", FAIRNESS)


CONTROL_ARM = {"name": "control", "weightPercent": 50}
FOREST_ARM = {"name": "forest", "model": {"uri": "/forest.onnx"}, "weightPercent": 40}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "fairness on a regression",
        with_change(fair_job(), "builtin", {"task": "regression", "algorithm": "random_forest"}),
        "fairness needs builtin.task classification",
    ),
    (
        "fairness with a custom command",
        with_change(fair_job(), "command", ["python", "train.py"]),
        "fairness is measured by the built-in trainer",
    ),
    (
        "the target (default label) as a sensitive attribute",
        with_change(fair_job(), "fairness.sensitiveAttributes", ["sex", "label"]),
        "fairness.sensitiveAttributes must not name dataset.targetColumn",
    ),
    (
        "fairness without a threshold",
        with_change(fair_job(), "fairness.thresholds", {}),
        "fairness.thresholds needs demographicParityDifference or equalizedOddsDifference",
    ),
    (
        "a sensitive attribute twice",
        with_change(fair_job(), "fairness.sensitiveAttributes", ["sex", "sex"]),
        "spec.fairness.sensitiveAttributes[1]: Duplicate value",
    ),
    ("workers as a string", with_change(training_job(), "workers", "two"), "spec.workers"),
    ("zero workers", with_change(training_job(), "workers", 0), "spec.workers"),
    (
        "distributed scikit-learn",
        with_change(training_job(), "workers", 2),
        "workers > 1 needs a PyTorch algorithm",
    ),
    (
        "reserved alias",
        with_change(training_job(), "register", {"modelName": "m", "alias": "v3"}),
        "reserved by MLflow",
    ),
    (
        "champion not a registry URI",
        with_change(challenged_job(), "challenge", {**CHALLENGE, "champion": "s3://models/churn.onnx"}),
        "challenge.champion must be a registry URI: models:/name@alias or models:/name/version",
    ),
    (
        "challenger alias is the champion's",
        with_change(challenged_job(), "register", {"modelName": "churn", "alias": "champion"}),
        "register.alias must not be the champion's alias",
    ),
    (
        "challenge without an alias to give",
        with_change(challenged_job(), "register", {"modelName": "churn"}),
        "challenge needs register with an alias",
    ),
    (
        "challenge with a custom command",
        with_change(challenged_job(), "command", ["python", "train.py"]),
        "challenge is run by the built-in trainer",
    ),
    (
        "regression metric on a classifier",
        with_change(challenged_job(), "challenge", {**CHALLENGE, "metric": "rmse"}),
        "challenge.metric must suit builtin.task",
    ),
    (
        "negative margin",
        with_change(challenged_job(), "challenge", {**CHALLENGE, "margin": -0.1}),
        "spec.challenge.margin",
    ),
    (
        "challenge in a retrain template checked too",
        with_change(
            drift_monitor(),
            "action",
            {
                "type": "Retrain",
                "trainingJobTemplate": {
                    "spec": {
                        **challenged_job()["spec"],
                        "register": {"modelName": "churn", "alias": "champion"},
                    }
                },
            },
        ),
        "register.alias must not be the champion's alias",
    ),
    ("negative GPUs", with_change(training_job(), "resources.gpus", -1), "spec.resources.gpus"),
    ("malformed memory", with_change(training_job(), "resources.memory", "lots"), "spec.resources.memory"),
    (
        "negative backoff",
        with_change(training_job(), "runPolicy.backoffLimit", -3),
        "spec.runPolicy.backoffLimit",
    ),
    ("dataset URI scheme", with_change(training_job(), "dataset.uri", "ftp://x/y.csv"), "spec.dataset.uri"),
    (
        "feast repository under the pod's scratch /tmp",
        with_change(
            training_job(),
            "dataset",
            {"feast": {"repo": "/tmp/features", "featureService": "churn", "entities": "s3://d/e.parquet"}},
        ),
        "spec.dataset.feast.repo: Invalid value",
    ),
    (
        "unknown algorithm",
        with_change(training_job(), "builtin.algorithm", "xgboost9000"),
        "spec.builtin.algorithm",
    ),
    (
        "search range low > high",
        with_change(
            training_job(),
            "tuning",
            {
                "objective": {"metric": "val_f1"},
                "searchSpace": {"lr": {"type": "float", "low": 1, "high": 0.1}},
            },
        ),
        "numeric ranges need low <= high",
    ),
    ("no dataset for the built-in trainer", {**training_job(), "spec": {"workers": 1}}, "needs spec.dataset"),
    (
        "env value and valueFrom",
        with_change(
            training_job(),
            "env",
            [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        "set value or valueFrom, not both",
    ),
    (
        "negative replicas",
        with_change(model_deployment(), "replicas", {"min": -1, "max": 3}),
        "spec.replicas.min",
    ),
    (
        "min > max replicas",
        with_change(model_deployment(), "replicas", {"min": 5, "max": 2}),
        "replicas.min must be <= replicas.max",
    ),
    (
        "model URI scheme",
        with_change(model_deployment(), "model.uri", "gs://bucket/model.onnx"),
        "spec.model.uri",
    ),
    ("bad sha256", with_change(model_deployment(), "model.sha256", "abc"), "spec.model.sha256"),
    (
        "canary above 100%",
        with_change(
            model_deployment(), "canary", {"model": {"uri": "models:/churn/2"}, "trafficPercent": 150}
        ),
        "spec.canary.trafficPercent",
    ),
    (
        "canary and abTest",
        with_change(
            with_change(model_deployment(), "canary", {"model": {"uri": "/c.onnx"}, "trafficPercent": 5}),
            "abTest",
            {"header": "x-user-id", "variants": [CONTROL_ARM, {**FOREST_ARM, "weightPercent": 50}]},
        ),
        "canary and abTest cannot split the same traffic",
    ),
    (
        "A/B weights not summing to 100",
        with_change(model_deployment(), "abTest", {"header": "h", "variants": [CONTROL_ARM, FOREST_ARM]}),
        "variants' weightPercent must sum to 100",
    ),
    (
        "A/B variant names twice",
        with_change(
            model_deployment(),
            "abTest",
            {
                "header": "h",
                "variants": [CONTROL_ARM, {**FOREST_ARM, "name": "control", "weightPercent": 50}],
            },
        ),
        "variant names must be unique",
    ),
    (
        "A/B without a control arm",
        with_change(
            model_deployment(),
            "abTest",
            {
                "header": "h",
                "variants": [
                    {**FOREST_ARM, "name": "a", "weightPercent": 50},
                    {**FOREST_ARM, "weightPercent": 50},
                ],
            },
        ),
        "exactly one variant has no model",
    ),
    (
        "A/B variant named shadow",
        with_change(
            model_deployment(),
            "abTest",
            {"header": "h", "variants": [CONTROL_ARM, {**FOREST_ARM, "name": "shadow", "weightPercent": 50}]},
        ),
        "a variant cannot be named stable, canary, shadow, explainer or grpc",
    ),
    (
        "shadow at 0%",
        with_change(model_deployment(), "shadow", {"model": {"uri": "/s.onnx"}, "percent": 0}),
        "spec.shadow.percent",
    ),
    (
        "sample rate above 1",
        with_change(model_deployment(), "payloadLogging.sampleRate", 1.5),
        "spec.payloadLogging.sampleRate",
    ),
    (
        "batch size 0",
        with_change(model_deployment(), "batching.maxBatchSize", 0),
        "spec.batching.maxBatchSize",
    ),
    ("no model", {**model_deployment(), "spec": {"replicas": {"min": 1, "max": 2}}}, "spec.model"),
    (
        "unknown test name",
        with_change(drift_monitor(), "tests", [{"feature": "age", "test": "magic"}]),
        "spec.tests[0].test",
    ),
    ("bad cron", with_change(drift_monitor(), "schedule", "every hour"), "spec.schedule"),
    ("drift share above 1", with_change(drift_monitor(), "driftShare", 2), "spec.driftShare"),
    (
        "window with both",
        with_change(drift_monitor(), "window", {"duration": "1h", "lastRows": 10}),
        "exactly one of duration, lastRows",
    ),
    (
        "bad window duration",
        with_change(drift_monitor(), "window", {"duration": "1 week"}),
        "spec.window.duration",
    ),
    (
        "retrain without template",
        with_change(drift_monitor(), "action", {"type": "Retrain"}),
        "action Retrain needs trainingJobTemplate",
    ),
    (
        "target not a DNS name",
        with_change(drift_monitor(), "target", {"modelDeployment": "Not_A_Name"}),
        "spec.target.modelDeployment",
    ),
    ("unknown field", with_change(model_deployment(), "replicaz", 3), "replicaz"),
    # issue 14: resources the API server used to accept and the operator could never realize
    ("name with a dot", model_deployment(name="churn.v2"), "metadata.name must be a DNS-1035 label"),
    ("name too long for a label", model_deployment(name="m" * 64), "metadata.name must be a DNS-1035 label"),
    ("name starting with a digit", training_job(name="1train"), "metadata.name must be a DNS-1035 label"),
    ("cron minute 60", with_change(drift_monitor(), "schedule", "60 * * * *"), "spec.schedule"),
    ("cron weekday 7", with_change(drift_monitor(), "schedule", "0 0 * * 7"), "spec.schedule"),
    ("cron L", with_change(drift_monitor(), "schedule", "0 0 L * *"), "spec.schedule"),
    (
        "cron range backwards",
        with_change(drift_monitor(), "schedule", "0 5-1 * * *"),
        "a range a-b needs a <= b",
    ),
    (
        "negative integer CPU",
        with_change(training_job(), "resources.cpu", -2),
        "a quantity must not be negative",
    ),
    (
        "toleration without key, operator Equal",
        with_change(model_deployment(), "tolerations", [{"value": "x"}]),
        "a toleration without a key must use operator Exists",
    ),
    (
        "toleration Exists with a value",
        with_change(model_deployment(), "tolerations", [{"key": "k", "operator": "Exists", "value": "x"}]),
        "operator Exists takes no value",
    ),
    (
        "tolerationSeconds without NoExecute",
        with_change(model_deployment(), "tolerations", [{"key": "k", "value": "v", "tolerationSeconds": 5}]),
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "node selector key not a label key",
        with_change(training_job(), "nodeSelector", {"gpu type": "a100"}),
        "spec.nodeSelector",
    ),
    (
        "p-value threshold above 1",
        with_change(drift_monitor(), "tests", [{"feature": "age", "test": "ks", "threshold": 1.5}]),
        "a p-value threshold (ks, chi2) must be in (0, 1]",
    ),
    (
        "negative PSI threshold",
        with_change(drift_monitor(), "tests", [{"feature": "age", "test": "psi", "threshold": -0.1}]),
        "spec.tests[0].threshold",
    ),
    (
        "feature configured twice",
        with_change(
            drift_monitor(), "tests", [{"feature": "age", "test": "ks"}, {"feature": "age", "test": "psi"}]
        ),
        "spec.tests[1]: Duplicate value",
    ),
    (
        "zero workers names the range only",
        with_change(training_job(), "workers", 0),
        "spec.workers: Invalid value",
    ),
]


@pytest.mark.parametrize(("case", "manifest", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_refused_by_the_api_server(crds: Cluster, case: str, manifest: dict[str, Any], expected: str) -> None:
    result = crds.kubectl.apply(manifest, "default", "--dry-run=server", "--validate=strict")
    assert result.returncode != 0, f"{case}: accepted"
    assert expected in result.stderr, f"{case}: message does not name {expected!r}: {result.stderr}"
    if case == "zero workers names the range only":
        assert "PyTorch" not in result.stderr, result.stderr


def server_dry_run(cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    out = cluster.kubectl.run(
        "apply", "-n", "default", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(manifest)
    )
    stored: dict[str, Any] = json.loads(out.stdout)
    return stored


def test_valid_resources_are_accepted_with_defaults(crds: Cluster) -> None:
    tj = server_dry_run(crds, training_job())["spec"]
    assert tj["workers"] == 1 and tj["runPolicy"]["backoffLimit"] == 0 and tj["resources"]["gpus"] == 0
    md = server_dry_run(crds, model_deployment())["spec"]
    assert md["replicas"] == {"min": 1, "max": 3}
    assert md["batching"] == {"maxBatchSize": 32, "maxWaitMs": 2, "maxRunMs": 10}
    assert "canary" not in md
    challenged = server_dry_run(crds, challenged_job())["spec"]
    assert challenged["challenge"] == {**CHALLENGE, "margin": 0}
    fair = server_dry_run(crds, with_change(fair_job(), "importance", {}))["spec"]
    assert fair["fairness"] == {**FAIRNESS, "minGroupSize": 30}
    assert fair["importance"] == {"sampleRows": 200, "backgroundRows": 50}
    dm = server_dry_run(crds, drift_monitor())["spec"]
    assert dm["schedule"] == "0 * * * *" and dm["driftShare"] == 0.5 and dm["action"]["type"] == "Alert"
