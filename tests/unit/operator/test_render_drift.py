from __future__ import annotations

import json
from typing import Any

import pytest

from kubeloop.api.deployment import PayloadLogging
from kubeloop.api.drift import DriftCheckConfig, DriftMonitorSpec
from kubeloop_operator.render.drift import render_cronjob
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit
PAYLOAD = PayloadLogging(sink_uri="s3://logs", sample_rate=1.0)


def spec(**fields: Any) -> DriftMonitorSpec:
    base = {"target": {"modelDeployment": "churn"}, "reference": {"uri": "s3://data/ref.parquet"}}
    return DriftMonitorSpec.model_validate({**base, **fields})


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_cronjob_runs_the_check_against_the_payload_log(settings: OperatorSettings) -> None:
    md = spec(
        schedule="*/15 * * * *",
        window={"lastRows": 5000},
        tests=[{"feature": "age", "test": "ks", "threshold": 0.01}],
    )
    cronjob = render_cronjob(owner_of("DriftMonitor", "mon"), md, PAYLOAD, settings)
    assert cronjob["metadata"]["name"] == "mon-check"
    assert cronjob["spec"]["schedule"] == "*/15 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = container["command"]
    assert args[:3] == ["kubeloop", "drift", "check"]
    assert arg(args, "--payload-log") == "s3://logs"
    assert arg(args, "--model") == "churn"
    assert arg(args, "--last-rows") == "5000"
    assert arg(args, "--report-uri") == "s3://logs/_reports/team-a/mon"
    config = DriftCheckConfig.model_validate(json.loads(arg(args, "--config")))
    assert config.tests[0].feature == "age"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_labels_let_the_operator_find_check_jobs(settings: OperatorSettings) -> None:
    cronjob = render_cronjob(owner_of("DriftMonitor", "mon"), spec(), settings=settings, payload=PAYLOAD)
    labels = cronjob["spec"]["jobTemplate"]["metadata"]["labels"]
    assert labels["kubeloop.io/driftmonitor"] == "mon"
    assert (
        "--window-duration"
        in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def test_check_pods_get_identity_and_storage_credentials_by_reference(settings: OperatorSettings) -> None:
    md = spec(serviceAccountName="drift", envFrom=[{"secretRef": {"name": "kubeloop-s3"}}])
    pod = render_cronjob(owner_of("DriftMonitor"), md, PAYLOAD, settings)["spec"]["jobTemplate"]["spec"][
        "template"
    ]["spec"]
    assert pod["serviceAccountName"] == "drift"
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "kubeloop-s3"}}]
    plain = render_cronjob(owner_of("DriftMonitor"), spec(), PAYLOAD, settings)["spec"]["jobTemplate"]["spec"]
    assert "serviceAccountName" not in plain["template"]["spec"]
    assert "envFrom" not in plain["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("fields", "threads"),
    [
        (
            {"resources": {"cpu": "500m"}},
            {"valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
        ),
        ({"env": [{"name": "OMP_NUM_THREADS", "value": "2"}]}, {"value": "2"}),  # the user's own wins
    ],
)
def test_check_threads_follow_the_cpu_limit(
    settings: OperatorSettings, fields: dict[str, Any], threads: dict[str, Any]
) -> None:
    pod = render_cronjob(owner_of("DriftMonitor"), spec(**fields), PAYLOAD, settings)["spec"]["jobTemplate"][
        "spec"
    ]["template"]["spec"]
    env = [e for e in pod["containers"][0]["env"] if e["name"] == "OMP_NUM_THREADS"]
    assert env == [{"name": "OMP_NUM_THREADS", **threads}]
