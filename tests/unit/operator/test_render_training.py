from __future__ import annotations

import json
from typing import Any

import pytest

from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit


def spec(**fields: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({"dataset": {"uri": "s3://b/train.parquet"}, **fields})


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_single_worker_job_with_gpu_toleration_and_run_policy(settings: OperatorSettings) -> None:
    children = render_training(
        owner_of("TrainingJob"),
        spec(
            resources={"cpu": 2, "memory": "4Gi", "gpus": 2},
            runPolicy={
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 60,
                "suspend": True,
            },
            nodeSelector={"pool": "a100"},
        ),
        settings,
    )
    assert [c["kind"] for c in children] == ["Job"]
    job = children[0]
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert job["spec"]["suspend"] is True
    assert "completionMode" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "2"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-123"


def test_mlflow_and_spec_are_injected(settings: OperatorSettings) -> None:
    job = render_training(owner_of("TrainingJob", "churn"), spec(mlflow={"experiment": "exp"}), settings)[0]
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert env["MLFLOW_TRACKING_URI"] == settings.mlflow_tracking_uri
    assert env["MLFLOW_EXPERIMENT_NAME"] == "exp"
    assert env["MLFLOW_RUN_NAME"] == "churn"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["KUBELOOP_TRAININGJOB_UID"] == "uid-123"
    assert (
        TrainingJobSpec.model_validate(json.loads(env["KUBELOOP_TRAINING_SPEC"])).mlflow.experiment == "exp"
    )


def test_user_env_overrides_ours_and_secrets_stay_references(settings: OperatorSettings) -> None:
    user_env = [
        {"name": "MLFLOW_TRACKING_URI", "value": "http://other:5000"},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "false"},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}},
    ]
    job = render_training(owner_of("TrainingJob"), spec(env=user_env), settings)[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert names.count("MLFLOW_TRACKING_URI") == 1
    assert env_of(container)["MLFLOW_TRACKING_URI"] == "http://other:5000"
    assert names.count("MLFLOW_DISABLE_TELEMETRY") == 1
    assert env_of(container)["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert env_of(container)["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3", "key": "secret"}}


def test_distributed_renders_indexed_job_and_headless_service(settings: OperatorSettings) -> None:
    job, service = render_training(owner_of("TrainingJob", "ddp"), spec(workers=3), settings)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == "ddp"
    env = env_of(pod["containers"][0])
    assert env["MASTER_ADDR"] == "ddp-0.ddp.team-a.svc"
    assert env["MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == "3"
    assert env["RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert set(service["spec"]["selector"].items()) <= set(
        job["spec"]["template"]["metadata"]["labels"].items()
    )


def test_every_pod_is_restricted(settings: OperatorSettings) -> None:
    pod = render_training(owner_of("TrainingJob"), spec(workers=2), settings)[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_builtin_trainer_is_the_default_command(settings: OperatorSettings) -> None:
    container = render_training(owner_of("TrainingJob"), spec(), settings)[0]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["kubeloop", "train"]
    assert container["image"] == settings.trainer_image
    custom = render_training(
        owner_of("TrainingJob"), spec(image="me/train:1", command=["python", "t.py"]), settings
    )
    assert custom[0]["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "t.py"]


def test_training_pods_get_identity_and_credentials_by_reference(settings: OperatorSettings) -> None:
    tj = spec(
        serviceAccountName="trainer",
        envFrom=[{"secretRef": {"name": "kubeloop-s3"}}],
        workers=2,
        builtin={"algorithm": "mlp"},
    )
    job = render_training(owner_of("TrainingJob"), tj, settings)[0]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "kubeloop-s3"}}]
    assert {"MASTER_ADDR", "RANK", "MLFLOW_TRACKING_URI"} <= set(env_of(container))


@pytest.mark.parametrize(
    ("fields", "threads"),
    [
        ({"resources": {"cpu": "500m"}}, {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}),
        ({}, {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}),  # no limit: the node's CPUs
        ({"processesPerWorker": 2, "builtin": {"algorithm": "mlp"}}, None),  # torchrun's one per process
        ({"env": [{"name": "OMP_NUM_THREADS", "value": "3"}]}, "3"),
    ],
)
def test_cpu_threads_follow_the_cpu_limit(
    settings: OperatorSettings, fields: dict[str, Any], threads: Any
) -> None:
    container = render_training(owner_of("TrainingJob"), spec(**fields), settings)[0]["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert env_of(container).get("OMP_NUM_THREADS") == threads
    assert [e["name"] for e in container["env"]].count("OMP_NUM_THREADS") == (threads is not None)
