"""Several processes per training pod: what the renderer gives the pod (torchrun as its launcher),
and that one process per pod (P = 1) renders as before."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.processes import (
    NEEDS_TORCH,
    NO_TUNING,
    ONE_PER_GPU,
    PROCESSES_SPEC_RULES,
    processes_per_worker,
    world_size,
)
from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator.render.processes import LAUNCHER
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit

INDEX = {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
TORCH = {"dataset": {"uri": "s3://b/train.parquet"}, "builtin": {"algorithm": "mlp"}}


def spec(**fields: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({**TORCH, **fields})


def container_of(tj: TrainingJobSpec, settings: OperatorSettings) -> dict[str, Any]:
    job = render_training(owner_of("TrainingJob", "ddp"), tj, settings)[0]
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_one_process_per_pod_renders_as_before(settings: OperatorSettings) -> None:
    container = container_of(spec(workers=2), settings)
    assert container["command"] == ["kubeloop", "train"]
    env = env_of(container)
    assert (env["WORLD_SIZE"], env["LOCAL_RANK"], env["RANK"]) == ("2", "0", INDEX)
    assert not any(name.startswith("PET_") for name in env)
    single = env_of(container_of(spec(), settings))
    assert not {"WORLD_SIZE", "RANK", "PET_NNODES"} & set(single)


def test_several_processes_per_pod_run_under_torchrun(settings: OperatorSettings) -> None:
    tj = spec(workers=2, processesPerWorker=4, resources={"gpus": 4})
    children = render_training(owner_of("TrainingJob", "ddp"), tj, settings)
    job, service = children
    assert service["kind"] == "Service" and job["spec"]["completions"] == 2
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == [*LAUNCHER, "kubeloop", "train"]
    env = env_of(container)
    assert env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "4"
    assert env["PET_NODE_RANK"] == INDEX  # the pod index: torchrun's GROUP_RANK
    assert env["PET_MASTER_ADDR"] == "ddp-0.ddp.team-a.svc" and env["PET_MASTER_PORT"] == "29500"
    assert env["PET_MAX_RESTARTS"] == "0"
    assert not {"RANK", "WORLD_SIZE", "LOCAL_RANK"} & set(env)  # torchrun sets them per process
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert world_size(tj) == 8


def test_one_pod_with_several_processes_needs_no_service(settings: OperatorSettings) -> None:
    tj = spec(command=["python", "train.py"], args=["--lr", "0.1"], resources={"gpus": 2})
    children = render_training(owner_of("TrainingJob", "ddp"), tj, settings)
    assert [c["kind"] for c in children] == ["Job"]
    assert "completionMode" not in children[0]["spec"]
    container = children[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [*LAUNCHER, "python", "train.py"]
    assert container["args"] == ["--lr", "0.1"]
    env = env_of(container)
    assert (env["PET_NNODES"], env["PET_NPROC_PER_NODE"], env["PET_NODE_RANK"]) == ("1", "2", "0")
    assert env["PET_MASTER_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1),
        ({"resources": {"gpus": 1}}, 1),
        ({"resources": {"gpus": 4}}, 4),  # one per GPU by default
        ({"resources": {"gpus": 4}, "processesPerWorker": 2}, 2),
        ({"processesPerWorker": 3}, 3),  # CPU processes
        ({"resources": {"gpus": 4}, "builtin": {"algorithm": "random_forest"}}, 1),  # not distributed
        ({"resources": {"gpus": 4}, "command": ["python", "t.py"]}, 4),
    ],
)
def test_processes_per_worker_default(fields: dict[str, Any], expected: int) -> None:
    assert processes_per_worker(spec(**fields)) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"processesPerWorker": 2, "builtin": {"algorithm": "gradient_boosting"}}, NEEDS_TORCH),
        (
            {
                "processesPerWorker": 2,
                "tuning": {
                    "objective": {"metric": "val_f1"},
                    "searchSpace": {"lr": {"type": "float", "low": 0.1, "high": 1}},
                },
            },
            NO_TUNING,
        ),
        ({"processesPerWorker": 4, "resources": {"gpus": 2}}, ONE_PER_GPU),
        ({"processesPerWorker": 0}, "greater than or equal to 1"),
        ({"processesPerWorker": 17}, "less than or equal to 16"),
    ],
)
def test_refused_combinations_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        spec(**fields)
    assert "processesPerWorker" in str(raised.value)


def test_the_crd_carries_the_rules_and_bounds() -> None:
    schema = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {(r["rule"], r["message"]) for r in schema["x-kubernetes-validations"]}
    assert {(r["rule"], r["message"]) for r in PROCESSES_SPEC_RULES} <= rules
    field = schema["properties"]["processesPerWorker"]
    assert (field["minimum"], field["maximum"]) == (1, 16)
    assert "default" not in field  # derived from resources.gpus
