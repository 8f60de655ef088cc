"""status.provenance from the trainer's summary and the pods as the API server returns them (the image
digest only the kubelet knows), for each data source kind; a retrain names the drift check that made
it; lakeFS credentials reach the pod by Secret reference."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.data_sources import POD_SCRATCH_DIRS, DataReference, Provenance
from kubeloop.api.drift import TrainingJobTemplate
from kubeloop.api.reproduce import pinned_manifest
from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.retrain import render_retrain
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from kubeloop_operator.status.training import derive_training_status

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "5e" * 32
SHA = "3f" * 32
REFERENCES = {
    "uri": DataReference(kind="uri", requested="s3://data/churn.parquet", sha256=SHA, rows=500),
    "dvc": DataReference(
        kind="dvc",
        requested="https://git.example.com/data.git data/churn.parquet@main",
        revision="a1b2c3d4" * 5,
        sha256=SHA,
        rows=500,
        details={"files": "1"},
    ),
    "lakefs": DataReference(
        kind="lakefs", requested="lakefs://churn/main/tables/churn", revision="c0" * 32, sha256=SHA, rows=500
    ),
    "feast": DataReference(
        kind="feast",
        requested="feast /feast/repo churn_v1 on s3://data/entities.parquet",
        revision="2025-01-02T03:04:05Z",
        sha256=SHA,
        rows=500,
        details={"featureService": "churn_v1", "entitiesSha256": "77" * 32},
    ),
}


def complete_job() -> dict[str, Any]:
    return {
        "metadata": {"name": "churn"},
        "status": {
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:05:00Z",
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
    }


def trainer_pod(summary: TrainingSummary | None, index: str = "0", image_id: str = "") -> dict[str, Any]:
    """A finished training pod as `kubectl get pod -o json` shows it (containerd runtime)."""
    terminated: dict[str, Any] = {"exitCode": 0, "reason": "Completed"}
    if summary is not None:
        terminated["message"] = encode(summary)
    return {
        "metadata": {
            "name": f"churn-{index}-x7k2p",
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "annotations": {"batch.kubernetes.io/job-completion-index": index},
            "labels": {"job-name": "churn"},
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "trainer",
                    "image": "docker.io/kubeloop/trainer:0.9.0",
                    "imageID": image_id or f"docker.io/kubeloop/trainer@{DIGEST}",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        },
    }


def summary_with(reference: DataReference) -> TrainingSummary:
    return TrainingSummary(
        mlflow_run_id="r1",
        metrics={"test_accuracy": 0.9},
        provenance=Provenance(data=reference, seed=7, code_version="0.9.0", git_sha="e" * 40),
    )


def derive(pods: list[dict[str, Any]], triggered_by: str | None = None) -> TrainingJobStatus:
    return derive_training_status(
        TrainingJobStatus(), complete_job(), pods, 1, False, "http://mlflow", triggered_by=triggered_by
    )


@pytest.mark.parametrize("kind", sorted(REFERENCES))
def test_status_carries_the_data_reference_seed_code_and_image_digest(kind: str) -> None:
    reference = REFERENCES[kind]
    status = derive([trainer_pod(summary_with(reference)), trainer_pod(None, index="1")])
    provenance = status.provenance
    assert provenance is not None
    assert provenance.data == reference
    assert (provenance.seed, provenance.code_version, provenance.git_sha) == (7, "0.9.0", "e" * 40)
    assert (provenance.image, provenance.image_id) == (
        "docker.io/kubeloop/trainer:0.9.0",
        f"docker.io/kubeloop/trainer@{DIGEST}",
    )
    wire = status.wire()["provenance"]
    assert wire["data"]["kind"] == kind and wire["imageId"].endswith(DIGEST)
    assert TrainingJobStatus.model_validate(status.wire()) == status  # what the status subresource stores


def test_a_pinned_rerun_from_the_status_reads_the_same_commit_on_the_same_image() -> None:
    status = derive([trainer_pod(summary_with(REFERENCES["lakefs"]))])
    spec = TrainingJobSpec.model_validate(
        {
            "dataset": {
                "lakefs": {
                    "repository": "churn",
                    "ref": "main",
                    "path": "tables/churn",
                    "endpoint": "http://lakefs:8000",
                    "secretRef": {"name": "lakefs"},
                }
            }
        }
    )
    manifest = pinned_manifest({"metadata": {"name": "churn"}, "spec": spec.wire(), "status": status.wire()})
    assert manifest["spec"]["dataset"]["lakefs"]["ref"] == "c0" * 32
    assert manifest["spec"]["dataset"]["sha256"] == SHA
    assert manifest["spec"]["image"] == f"docker.io/kubeloop/trainer@{DIGEST}"
    assert manifest["spec"]["builtin"]["seed"] == 7


def test_only_the_chief_pod_names_the_image_and_nothing_is_made_up() -> None:
    assert derive([]).provenance is None
    worker_only = derive([trainer_pod(None, index="1")])
    assert worker_only.provenance is None
    no_summary = derive([trainer_pod(None, image_id="sha256:" + "01" * 32)])
    assert no_summary.provenance is not None and no_summary.provenance.data is None
    assert no_summary.provenance.image_id == "sha256:" + "01" * 32


def test_a_retrain_records_the_drift_check_that_made_it() -> None:
    owner = Owner("DriftMonitor", "kubeloop.io/v1alpha1", "churn-drift", "team-a", "u1")
    template = TrainingJobTemplate.model_validate({"spec": {"dataset": {"uri": "s3://data/churn.parquet"}}})
    retrain = render_retrain(owner, template, "churn-drift-check-29433600")
    assert retrain["metadata"]["labels"]["kubeloop.io/drift-check"] == "churn-drift-check-29433600"
    triggered = retrain["metadata"]["annotations"]["kubeloop.io/triggered-by"]
    assert triggered == "DriftMonitor/churn-drift/churn-drift-check-29433600"
    status = derive([trainer_pod(summary_with(REFERENCES["dvc"]))], triggered_by=triggered)
    assert status.provenance is not None and status.provenance.triggered_by == triggered
    assert status.provenance.data == REFERENCES["dvc"]  # the data snapshot the retrain used


def test_lakefs_credentials_reach_the_pod_by_secret_reference() -> None:
    owner = Owner("TrainingJob", "kubeloop.io/v1alpha1", "churn", "team-a", "u1")
    spec = TrainingJobSpec.model_validate(
        {
            "dataset": {
                "lakefs": {
                    "repository": "churn",
                    "ref": "main",
                    "path": "tables/churn",
                    "endpoint": "http://lakefs:8000",
                    "secretRef": {"name": "lakefs-credentials"},
                }
            },
            "env": [{"name": "LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "value": "user-wins"}],
        }
    )
    (job,) = render_training(owner, spec, OperatorSettings())
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    by_name = [(e["name"], e.get("valueFrom", {}).get("secretKeyRef")) for e in env if "LAKECTL" in e["name"]]
    assert by_name == [
        ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", {"name": "lakefs-credentials", "key": "access_key_id"}),
        ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", {"name": "lakefs-credentials", "key": "secret_access_key"}),
        ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", None),  # the user's own variable comes last and wins
    ]


def test_git_credentials_reach_the_pod_by_secret_reference() -> None:
    owner = Owner("TrainingJob", "kubeloop.io/v1alpha1", "churn", "team-a", "u1")
    dvc = {"repo": "https://git.example.com/data.git", "path": "churn.parquet", "secretRef": {"name": "git"}}
    (job,) = render_training(
        owner, TrainingJobSpec.model_validate({"dataset": {"dvc": dvc}}), OperatorSettings()
    )
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [(e["name"], e["valueFrom"]["secretKeyRef"]) for e in env if "GIT" in e["name"]] == [
        ("KUBELOOP_GIT_USERNAME", {"name": "git", "key": "username"}),
        ("KUBELOOP_GIT_PASSWORD", {"name": "git", "key": "password"}),
    ]
    public = TrainingJobSpec.model_validate({"dataset": {"dvc": {**dvc, "secretRef": None}}})
    assert "KUBELOOP_GIT" not in str(render_training(owner, public, OperatorSettings()))


def test_a_feast_repository_config_map_is_mounted_read_only_at_its_repo() -> None:
    owner = Owner("TrainingJob", "kubeloop.io/v1alpha1", "churn", "team-a", "u1")
    feast = {"repo": "/feast/churn", "featureService": "churn_v1", "entities": "s3://b/entities.parquet"}
    spec = TrainingJobSpec.model_validate(
        {"dataset": {"feast": {**feast, "configMapRef": {"name": "features"}}}}
    )
    (job,) = render_training(owner, spec, OperatorSettings())
    pod = job["spec"]["template"]["spec"]
    assert {"name": "feast-repo", "configMap": {"name": "features"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "feast-repo", "mountPath": "/feast/churn", "readOnly": True} in mounts
    assert {"name": "tmp", "mountPath": "/tmp"} in mounts
    (plain,) = render_training(
        owner, TrainingJobSpec.model_validate({"dataset": {"feast": feast}}), OperatorSettings()
    )
    assert "feast-repo" not in str(plain)  # a repo in the image: nothing mounted over it


def test_the_pods_own_mounts_are_the_scratch_dirs_the_api_keeps_feast_repositories_out_of() -> None:
    owner = Owner("TrainingJob", "kubeloop.io/v1alpha1", "churn", "team-a", "u1")
    spec = TrainingJobSpec.model_validate(
        {"dataset": {"uri": "s3://b/train.parquet"}, "workers": 2, "builtin": {"algorithm": "mlp"}}
    )
    (job,) = [o for o in render_training(owner, spec, OperatorSettings()) if o["kind"] == "Job"]
    mounts = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {m["mountPath"] for m in mounts} == set(POD_SCRATCH_DIRS)


def test_the_provenance_survives_a_summary_cut_to_fit_the_termination_message() -> None:
    long = REFERENCES["dvc"].model_copy(update={"requested": "https://git.example.com/" + "x" * 3900})
    summary = summary_with(long).model_copy(update={"metrics": {f"m{i}": 0.5 for i in range(200)}})
    text = encode(summary)
    assert len(text.encode()) <= 4096
    status = derive([trainer_pod(summary)])
    assert status.provenance is not None and status.provenance.data is not None
    assert (status.provenance.data.revision, status.provenance.data.sha256) == (long.revision, SHA)
