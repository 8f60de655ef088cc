"""Registry-driven serving against a real MLflow server: moving an alias rolls the ModelDeployment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeloop.mlflow_client import connect
from tests.cluster.manifests import model_deployment
from tests.fixtures.cluster import Cluster, OperatorProcess, wait_for
from tests.fixtures.mlflow_server import MlflowServer

pytestmark = [pytest.mark.cluster, pytest.mark.mlflow]


def register_version(tracking_uri: str, name: str, tmp: Path, alias: str) -> str:
    """Log a model artifact in a run, register it as a new version, point `alias` at it. Uses its own
    client only: the process-wide MLflow tracking URI and active run stay untouched for other tests."""
    client = connect(tracking_uri)
    experiment = client.get_experiment_by_name("kubeloop-registry-test")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("kubeloop-registry-test")
    )
    folder = tmp / uuid.uuid4().hex / "model"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not really onnx: the operator never opens it")
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id).version
    client.set_registered_model_alias(name, alias, version)
    return str(version)


@pytest.fixture
def registry_operator(
    crds: Cluster, mlflow_server: MlflowServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    env = {"KUBELOOP_OPERATOR_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri}
    process = OperatorProcess(crds, "kl-registry-*", tmp_path / "operator.log", env).start()
    yield process
    process.kill()


@pytest.fixture
def registry_namespace(crds: Cluster) -> Iterator[str]:
    name = f"kl-registry-{uuid.uuid4().hex[:6]}"
    crds.kubectl.run("create", "namespace", name)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def served(kubectl: Any, namespace: str) -> tuple[str | None, str | None, str | None]:
    """(status version, Deployment env URI, pod-template version annotation)."""
    md = kubectl.get("modeldeployment", "churn", namespace) or {}
    deployment = kubectl.get("deployment", "churn", namespace) or {}
    template = deployment.get("spec", {}).get("template", {})
    env = {
        e["name"]: e.get("value")
        for e in (template.get("spec", {}).get("containers") or [{}])[0].get("env", [])
    }
    annotation = template.get("metadata", {}).get("annotations", {}).get("kubeloop.io/model-version")
    return (
        ((md.get("status") or {}).get("model") or {}).get("version"),
        env.get("KUBELOOP_SERVING_MODEL_URI"),
        annotation,
    )


def test_alias_move_rolls_the_deployment(
    registry_operator: OperatorProcess, registry_namespace: str, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    kubectl, ns = registry_operator.cluster.kubectl, registry_namespace
    name = f"churn-{uuid.uuid4().hex[:6]}"
    first = register_version(mlflow_server.tracking_uri, name, tmp_path, "champion")
    manifest = model_deployment("churn", model={"uri": f"models:/{name}@champion"}, registryPollSeconds=5)
    kubectl.apply(manifest, ns)
    assert wait_for(
        lambda: served(kubectl, ns) == (first, f"models:/{name}/{first}", first), 60, what="v1 served"
    )

    second = register_version(mlflow_server.tracking_uri, name, tmp_path, "champion")
    assert second != first
    assert wait_for(
        lambda: served(kubectl, ns) == (second, f"models:/{name}/{second}", second), 90, what="v2 rolled"
    )
    events = kubectl.run(
        "get", "events", "-n", ns, "--field-selector", "reason=ModelVersionChanged", "-o", "name"
    )
    assert events.stdout.strip()
    md = kubectl.get("modeldeployment", "churn", ns)
    assert md is not None and md["status"]["observedGeneration"] == 1, (
        "the spec never changed: only the registry did"
    )


def test_unknown_alias_is_reported(registry_operator: OperatorProcess, registry_namespace: str) -> None:
    kubectl, ns = registry_operator.cluster.kubectl, registry_namespace
    kubectl.apply(model_deployment("churn", model={"uri": "models:/no-such-model@champion"}), ns)

    def reason() -> str | None:
        status = (kubectl.get("modeldeployment", "churn", ns) or {}).get("status") or {}
        return next((c["reason"] for c in status.get("conditions") or [] if c["type"] == "Ready"), None)

    assert wait_for(lambda: reason() == "ModelNotResolved", 60, what="ModelNotResolved")
