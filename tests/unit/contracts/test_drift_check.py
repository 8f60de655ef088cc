"""Operator -> drift check: the command line the CronJob runs is one the drift CLI accepts as meant."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import PayloadLogging
from kubeloop.api.drift import DriftCheckConfig, DriftMonitorSpec
from kubeloop.contracts.drift_check import COMMAND, DEFAULT_WINDOW
from kubeloop_drift.cli import build_parser, parse_config
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.drift import render_cronjob
from kubeloop_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit
OWNER = Owner("DriftMonitor", "kubeloop.io/v1alpha1", "watch", "team-a", "uid")
BASE = {"target": {"modelDeployment": "churn"}, "reference": {"uri": "s3://data/ref.parquet"}}


def rendered_args(spec: dict[str, Any]) -> list[str]:
    monitor = DriftMonitorSpec.model_validate(spec)
    cronjob = render_cronjob(OWNER, monitor, PayloadLogging(sink_uri="s3://payloads"), OperatorSettings())
    args: list[str] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    return args


@pytest.mark.parametrize(
    ("window", "duration", "last_rows"),
    [({}, DEFAULT_WINDOW, None), ({"duration": "30m"}, "30m", None), ({"lastRows": 5000}, None, 5000)],
)
def test_the_cli_parses_the_rendered_command(
    window: dict[str, Any], duration: str | None, last_rows: int | None
) -> None:
    tests = [{"feature": "age", "test": "ks", "threshold": 0.01}]
    spec = {**BASE, "tests": tests, "driftShare": 0.3, **({"window": window} if window else {})}
    args = rendered_args(spec)
    assert args[: len(COMMAND)] == COMMAND
    parsed = build_parser().parse_args(args[len(COMMAND) - 1 :])  # the parser starts at the subcommand
    assert parsed.command == "check"
    assert (parsed.reference, parsed.payload_log, parsed.model) == (
        "s3://data/ref.parquet",
        "s3://payloads",
        "churn",
    )
    assert (parsed.window_duration, parsed.last_rows) == (duration, last_rows)
    config = parse_config(parsed.config)
    assert config == DriftCheckConfig.model_validate({"tests": tests, "driftShare": 0.3})
    assert parsed.report_uri == "s3://payloads/_reports/team-a/watch"
    assert parsed.profile_cache == "s3://payloads/_reports/team-a/watch/reference-profile"
    assert parsed.termination_log == "/dev/termination-log"


def test_the_performance_config_reaches_the_check_as_written() -> None:
    performance = {
        "labelsUri": "s3://labels/churn",
        "maturity": "24h",
        "task": "binary",
        "score": "probabilities.1",
        "metrics": [{"metric": "roc_auc", "threshold": 0.7}],
        "sensitiveAttributes": ["sex"],
        "fairness": [{"metric": "equalized_odds_difference", "max": 0.1}],
    }
    args = rendered_args({**BASE, "performance": performance})
    parsed = build_parser().parse_args(args[len(COMMAND) - 1 :])
    config = parse_config(parsed.config)
    assert (
        config.performance
        == DriftMonitorSpec.model_validate({**BASE, "performance": performance}).performance
    )
    assert config.performance is not None and config.performance.fairness[0].max == 0.1
