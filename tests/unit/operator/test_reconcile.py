"""Each kind's reconcile against an in-memory API server: what it applies, prunes, writes and posts."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop_operator.kube import path
from kubeloop_operator.reconcile import (
    reconcile_model_deployment,
    reconcile_training_job,
)
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.world import MODEL, NS, TRAINING, Obj, World, condition, finish_job, roll_out, sample

pytestmark = pytest.mark.unit


CANARY = {**MODEL, "canary": {"model": {"uri": "s3://models/churn-2.onnx"}, "trafficPercent": 50}}


def test_model_deployment_applies_children_once_and_writes_status_once(world: World) -> None:
    world.create("ModelDeployment", "churn", MODEL)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Deployment") == ["churn"]
    assert world.names("Service") == ["churn", "churn-grpc"]
    assert world.names("PodDisruptionBudget") == ["churn"]
    assert world.names("HorizontalPodAutoscaler") == ["churn"]
    assert world.api.count("PATCH") == 6 and world.api.count("PUT") == 1  # + routes ConfigMap, `-grpc`
    assert world.api.count("GET", "/modeldeployments/churn") == 1  # one read per reconcile
    status = world.status("ModelDeployment", "churn")
    assert status["observedGeneration"] == 1 and status["model"] == {"uri": "s3://models/churn.onnx"}
    assert condition(status, "Ready")["reason"] == "RollingOut"
    assert world.events == [], "not ready yet is no news"

    world.api.requests.clear()
    reconcile_model_deployment(world.ctx, NS, "churn")  # nothing changed: nothing written
    assert world.api.count("PATCH") == world.api.count("PUT") == 0

    roll_out(world, "churn")
    reconcile_model_deployment(world.ctx, NS, "churn")
    status = world.status("ModelDeployment", "churn")
    assert condition(status, "Ready")["status"] == "True" and status["readyReplicas"] == 2
    assert world.events == [("Normal", "Available", "2 replicas ready")]
    labels = {"namespace": NS, "modeldeployment": "churn"}
    assert sample("kubeloop_modeldeployment_ready_replicas", **labels) == 2


def test_a_new_generation_is_applied_and_the_unwanted_canary_pruned(world: World) -> None:
    world.create("ModelDeployment", "churn", CANARY)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Deployment") == ["churn", "churn-canary"]
    world.edit_spec("ModelDeployment", "churn", MODEL)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Deployment") == ["churn"]
    status = world.status("ModelDeployment", "churn")
    assert status["observedGeneration"] == 2 and "canaryModel" not in status
    annotations = world.get("Deployment", "churn")["metadata"]["annotations"]
    assert annotations["kubeloop.io/generation"] == "2"


def test_a_deleted_child_is_applied_again(world: World) -> None:
    world.create("ModelDeployment", "churn", MODEL)
    reconcile_model_deployment(world.ctx, NS, "churn")
    del world.api.objects[path("Deployment", NS, "churn")]
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Deployment") == ["churn"]


def test_an_edited_child_is_taken_back(world: World) -> None:
    world.create("ModelDeployment", "churn", MODEL)
    reconcile_model_deployment(world.ctx, NS, "churn")
    edited = world.get("Deployment", "churn")
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else"
    world.api.store(path("Deployment", NS, "churn"), edited, spec_changed=True)
    reconcile_model_deployment(world.ctx, NS, "churn")
    container = world.get("Deployment", "churn")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == world.ctx.settings.serving_image
    scaled = world.get("Deployment", "churn")
    scaled["spec"]["replicas"] = 3  # the autoscaler's business, not a drift to take back
    world.api.store(path("Deployment", NS, "churn"), scaled, spec_changed=True)
    world.api.requests.clear()
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.api.count("PATCH") == 0


def test_a_bad_spec_is_a_permanent_error_naming_the_field(world: World) -> None:
    world.create("ModelDeployment", "churn", {"model": {"uri": "ftp://nope"}})
    with pytest.raises(kopf.PermanentError, match=r"spec\.model\.uri"):
        reconcile_model_deployment(world.ctx, NS, "churn")
    ready = condition(world.status("ModelDeployment", "churn"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec") and "spec.model.uri" in ready[
        "message"
    ]
    assert world.names("Deployment") == []


def test_an_unresolvable_model_keeps_the_generation_and_retries(world: World) -> None:
    world.ctx.settings = OperatorSettings(mlflow_tracking_uri="http://127.0.0.1:9")
    world.create("ModelDeployment", "churn", {"model": {"uri": "models:/churn@champion"}})
    with pytest.raises(kopf.TemporaryError):
        reconcile_model_deployment(world.ctx, NS, "churn")
    status = world.status("ModelDeployment", "churn")
    assert condition(status, "Ready")["reason"] == "ModelNotResolved" and "observedGeneration" not in status
    assert world.names("Deployment") == []


def test_a_pinned_registry_version_needs_no_registry(world: World) -> None:
    world.create("ModelDeployment", "churn", {"model": {"uri": "models:/churn/3"}})
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.status("ModelDeployment", "churn")["model"] == {"uri": "models:/churn/3", "version": "3"}


def test_a_status_conflict_is_decided_again_on_a_fresh_read(world: World) -> None:
    world.create("ModelDeployment", "churn", MODEL)
    conflicts: list[str] = []

    def someone_else_writes_first(method: str, url: str, _: Any) -> None:
        if method == "PUT" and not conflicts:
            conflicts.append(url)
            world.set_status("ModelDeployment", "churn", {"replicas": 7})

    world.api.before.append(someone_else_writes_first)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert conflicts and world.api.count("GET", "/modeldeployments/churn") == 2
    assert world.status("ModelDeployment", "churn")["replicas"] == 0  # derived from the world again


def test_the_triggers_read_saves_a_get_and_a_stale_one_is_read_again(world: World) -> None:
    world.create("ModelDeployment", "churn", MODEL)
    stale = copy.deepcopy(world.get("ModelDeployment", "churn"))
    reconcile_model_deployment(world.ctx, NS, "churn", copy.deepcopy(stale))
    assert world.api.count("GET", "/modeldeployments/churn") == 0 and world.api.count("PUT") == 1
    world.edit_spec("ModelDeployment", "churn", CANARY)
    reconcile_model_deployment(world.ctx, NS, "churn", stale)  # an old read: its write conflicts
    assert world.api.count("GET", "/modeldeployments/churn") == 1
    assert world.status("ModelDeployment", "churn")["observedGeneration"] == 2
    assert world.names("Deployment") == ["churn", "churn-canary"]


def test_metric_series_go_with_the_object(world: World) -> None:
    world.create("ModelDeployment", "gone", MODEL)
    reconcile_model_deployment(world.ctx, NS, "gone")
    labels = {"namespace": NS, "modeldeployment": "gone"}
    assert sample("kubeloop_modeldeployment_min_replicas", **labels) == 2
    del world.api.objects[path("ModelDeployment", NS, "gone")]
    reconcile_model_deployment(world.ctx, NS, "gone")
    assert sample("kubeloop_modeldeployment_min_replicas", **labels) is None
    assert sample("kubeloop_modeldeployment_replicas", **labels) is None


def test_training_job_runs_once_and_stays_finished(world: World) -> None:
    world.create("TrainingJob", "fit", TRAINING)
    reconcile_training_job(world.ctx, NS, "fit")
    assert world.names("Job") == ["fit"] and world.status("TrainingJob", "fit")["phase"] == "Pending"
    finish_job(world, "fit", encode(TrainingSummary(mlflow_run_id="r1", metrics={"f1": 0.9})))
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Succeeded" and status["metrics"] == {"f1": 0.9}
    assert condition(status, "Succeeded")["reason"] == "Completed"
    assert ("Normal", "Succeeded", "training completed") in world.events
    del world.api.objects[path("Job", NS, "fit")]  # ttlSecondsAfterFinished
    world.ctx.remember_applied(("TrainingJob", NS, "fit"), None)  # as after a restart
    reconcile_training_job(world.ctx, NS, "fit")
    assert world.names("Job") == [], "a finished run is never started again"
    assert world.status("TrainingJob", "fit")["phase"] == "Succeeded"


def test_a_changed_training_spec_replaces_the_immutable_job(world: World) -> None:
    world.create("TrainingJob", "fit", TRAINING)
    reconcile_training_job(world.ctx, NS, "fit")

    def immutable(method: str, url: str, _: Any) -> None:
        if method == "PATCH" and url.endswith("/jobs/fit"):
            raise ApiException(status=422, reason="Invalid")

    world.api.before.append(immutable)
    world.edit_spec("TrainingJob", "fit", {**TRAINING, "hyperparameters": {"lr": 0.1}})
    with pytest.raises(kopf.TemporaryError, match="previous Job"):
        reconcile_training_job(world.ctx, NS, "fit")
    assert world.names("Job") == []


SIDE = {
    **MODEL,
    "shadow": {"model": {"uri": "s3://models/churn-3.onnx"}, "percent": 20},
    "abTest": {
        "header": "x-user-id",
        "variants": [
            {"name": "control", "weightPercent": 70},
            {"name": "forest", "model": {"uri": "s3://models/forest.onnx"}, "weightPercent": 30},
        ],
    },
}


def routes_in(world: World, name: str) -> Obj:
    routes: Obj = json.loads(world.get("ConfigMap", f"{name}-routes")["data"]["routes.json"])
    return routes


def test_shadow_and_ab_arms_are_routed_once_ready_and_pruned_when_removed(world: World) -> None:
    world.create("ModelDeployment", "churn", SIDE)
    reconcile_model_deployment(world.ctx, NS, "churn")
    tracks = ["churn", "churn-forest", "churn-shadow"]
    assert world.names("Deployment") == tracks
    assert world.names("Service") == [*tracks[:2], "churn-grpc", tracks[2]]
    routes = routes_in(world, "churn")
    assert routes["shadow"]["percent"] == 0 and routes["shadow"]["url"].startswith("http://churn-shadow.")
    assert [v["weight_percent"] for v in routes["ab"]["variants"]] == [100, 0]
    status = world.status("ModelDeployment", "churn")
    assert status["shadow"]["routed"] is False and status["shadow"]["percent"] == 0
    assert [(a["name"], a["percent"]) for a in status["abTest"]] == [("control", 100), ("forest", 0)]

    for name in tracks:
        roll_out(world, name)
    reconcile_model_deployment(world.ctx, NS, "churn")
    routes = routes_in(world, "churn")
    assert routes["shadow"]["percent"] == 20
    assert [v["weight_percent"] for v in routes["ab"]["variants"]] == [70, 30]
    status = world.status("ModelDeployment", "churn")
    assert status["shadow"] == {
        "name": "shadow",
        "model": {"uri": "s3://models/churn-3.onnx"},
        "readyReplicas": 2,
        "routed": True,
        "percent": 20,
        "message": "",
    }
    assert [(a["name"], a["routed"], a["percent"]) for a in status["abTest"]] == [
        ("control", True, 70),
        ("forest", True, 30),
    ]
    assert condition(status, "Ready")["status"] == "True" and status["readyReplicas"] == 6

    world.edit_spec("ModelDeployment", "churn", MODEL)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Deployment") == ["churn"]
    assert world.names("Service") == ["churn", "churn-grpc"]
    assert routes_in(world, "churn") == {"generation": 2}
    status = world.status("ModelDeployment", "churn")
    assert "shadow" not in status and "abTest" not in status
