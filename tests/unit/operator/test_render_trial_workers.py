"""tuning.storage: the training Job becomes N indexed trial workers; what each pod is told is what
`kubeloop train` reads (kubeloop.contracts.trial_workers), the database URL only by Secret reference."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeloop.api.training import TrainingJobSpec
from kubeloop.contracts.trial_workers import TrialWorker, TrialWorkerEnvError, trial_worker_from_env
from kubeloop_operator.render.common import restricted_container_security, restricted_pod_security
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit

URL = "postgresql+psycopg://optuna:s3cret@db.team-a.svc:5432/studies"


def spec(parallelism: int = 4, storage: bool = True, **fields: Any) -> TrainingJobSpec:
    tuning: dict[str, Any] = {
        "maxTrials": 16,
        "parallelism": parallelism,
        "objective": {"metric": "val_f1"},
        "searchSpace": {"depth": {"type": "int", "low": 2, "high": 8}},
    }
    if storage:
        tuning["storage"] = {"secretRef": {"name": "study-db", "key": "url"}}
    return TrainingJobSpec.model_validate(
        {"dataset": {"uri": "s3://b/train.parquet"}, "tuning": tuning, **fields}
    )


def resolve(env: list[dict[str, Any]], index: int, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """What the kubelet makes of the env of the pod with completion index ``index``."""
    values: dict[str, str] = {}
    for entry in env:
        source = entry.get("valueFrom")
        if source is None:
            values[entry["name"]] = entry["value"]
        elif "secretKeyRef" in source:
            values[entry["name"]] = secrets[(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])]
        elif "resourceFieldRef" in source:
            assert source["resourceFieldRef"] == {"resource": "limits.cpu", "divisor": "1"}
            values[entry["name"]] = "2"  # no CPU limit here: the node's allocatable CPUs
        else:
            path = source["fieldRef"]["fieldPath"]
            assert path == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            values[entry["name"]] = str(index)
    return values


def test_parallelism_makes_an_indexed_job_of_trial_workers(settings: OperatorSettings) -> None:
    children = render_training(owner_of("TrainingJob", "hpo"), spec(), settings)
    assert [c["kind"] for c in children] == ["Job"]  # no rendezvous Service, no ConfigMap
    job = children[0]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 4, 4)
    assert job["backoffLimitPerIndex"] == 3 and "backoffLimit" not in job
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailIndex"
    assert rules[1]["onExitCodes"] == {"containerName": "trainer", "operator": "In", "values": [1]}
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert pod["securityContext"] == restricted_pod_security()
    container = pod["containers"][0]
    assert container["name"] == "trainer"
    assert container["securityContext"] == restricted_container_security()
    assert pod["automountServiceAccountToken"] is False


def test_the_database_url_comes_only_from_the_secret(settings: OperatorSettings) -> None:
    job = render_training(owner_of("TrainingJob", "hpo"), spec(), settings)[0]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    storage = next(e for e in env if e["name"] == "KUBELOOP_STUDY_STORAGE")
    assert storage == {
        "name": "KUBELOOP_STUDY_STORAGE",
        "valueFrom": {"secretKeyRef": {"name": "study-db", "key": "url"}},
    }
    rendered = json.dumps(job)
    assert "postgresql" not in rendered and "s3cret" not in rendered


@pytest.mark.parametrize("index", [0, 3])
def test_each_pod_reads_its_place_from_what_the_operator_rendered(
    settings: OperatorSettings, index: int
) -> None:
    job = render_training(owner_of("TrainingJob", "hpo"), spec(), settings)[0]
    env = resolve(job["spec"]["template"]["spec"]["containers"][0]["env"], index, {("study-db", "url"): URL})
    worker = trial_worker_from_env(env)
    assert worker == TrialWorker(index=index, count=4, storage_url=URL)
    assert worker.is_finaliser == (index == 0)


def test_without_storage_the_job_is_the_single_pod_one(settings: OperatorSettings) -> None:
    job = render_training(owner_of("TrainingJob"), spec(parallelism=1, storage=False), settings)[0]["spec"]
    assert "completionMode" not in job and "backoffLimitPerIndex" not in job and job["backoffLimit"] == 0
    assert [rule["action"] for rule in job["podFailurePolicy"]["rules"]] == ["Ignore"]  # a single pod's
    env = {e["name"] for e in job["template"]["spec"]["containers"][0]["env"]}
    assert "KUBELOOP_STUDY_STORAGE" not in env
    assert trial_worker_from_env({"KUBELOOP_TRAINING_SPEC": "{}"}) is None


def test_more_retries_per_index_when_the_run_policy_asks(settings: OperatorSettings) -> None:
    job = render_training(owner_of("TrainingJob"), spec(runPolicy={"backoffLimit": 7}), settings)[0]["spec"]
    assert job["backoffLimitPerIndex"] == 7


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"KUBELOOP_TRIAL_WORKER_INDEX": "4", "KUBELOOP_TRIAL_WORKERS": "4"}, "does not fit"),
        ({"KUBELOOP_TRIAL_WORKER_INDEX": "x"}, "not an integer"),
        ({"KUBELOOP_STUDY_HEARTBEAT_SECONDS": "0"}, "at least 1"),
    ],
)
def test_malformed_worker_env_is_refused(env: dict[str, str], problem: str) -> None:
    with pytest.raises(TrialWorkerEnvError, match=problem):
        trial_worker_from_env({"KUBELOOP_STUDY_STORAGE": URL, **env})
