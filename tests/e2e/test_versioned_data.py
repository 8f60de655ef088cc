"""Versioned data on real pods, in restricted pods (read-only root file system):
- a TrainingJob reads a DVC-tracked dataset the way teams keep one, its git repository on a private
  git server (smart HTTP, basic auth with a deploy token from a Secret) and its data on an S3 DVC
  remote; status.provenance names the commit and the bytes it read; once main moved on, the re-run
  pinned from that provenance reads the first commit's data again, to identical metrics;
- a TrainingJob trains on a Feast feature service's offline features joined point-in-time onto an
  entity file, its feature repository from a ConfigMap and its registry and feature files on S3; the
  pod's provenance is the join this host makes of the same store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import s3fs

from kubeloop.api.reproduce import pinned_manifest
from kubeloop.api.training import Dataset
from kubeloop_operator.render.common import restricted_container_security, restricted_pod_security
from kubeloop_trainer.sources import load_source
from tests.e2e.load import trainer_image
from tests.e2e.loop import Loop, succeeded
from tests.e2e.platform import SYSTEM_NAMESPACE, Platform
from tests.fixtures.churn import TARGET, churn_data
from tests.fixtures.data_repos import BASE, DvcRepo, feast_repo
from tests.fixtures.git_server import SERVE_GIT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

GIT_PORT = 8000
#: the git server's credentials, a Secret as teams keep a deploy token; the pods read it by reference
GIT_SECRET = {"username": "reader", "password": "deploy-t0ken"}


def git_server(image: str) -> list[dict[str, Any]]:
    """A git server Deployment (restricted Pod Security Standard, as the operator renders it) behind basic
    auth with the Secret `git`, and its Service `git`."""
    labels = {"app": "git"}
    container = {
        "name": "git",
        "image": image,
        "command": ["python", "-c", SERVE_GIT, "/tmp/data.git", str(GIT_PORT)],
        "env": [
            {"name": f"GIT_{key.upper()}", "valueFrom": {"secretKeyRef": {"name": "git", "key": key}}}
            for key in GIT_SECRET
        ],
        "ports": [{"containerPort": GIT_PORT, "name": "http"}],
        "readinessProbe": {"tcpSocket": {"port": GIT_PORT}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "git"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "git"},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": GIT_PORT, "targetPort": GIT_PORT}]},
    }
    return [deployment, service]


def host_s3(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host writes with the S3 Secret's credentials, to the S3 server as this host reaches it; the
    pods read with the same Secret (envFrom), whose AWS_ENDPOINT_URL is the in-cluster one."""
    for key, value in platform.secret("kubeloop-s3", SYSTEM_NAMESPACE).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", platform.service_url("s3", SYSTEM_NAMESPACE))
    # s3fs caches its instances by their arguments, not by the environment they read: `make test` is one
    # process, and earlier tests' instances point at their own S3 servers
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_dvc_dataset_from_a_private_git_server_and_s3_trains_in_a_pod_and_its_pinned_rerun_reads_it(
    platform: Platform, e2e_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git"}, "stringData": GIT_SECRET}
    for manifest in [secret, *git_server(trainer_image(platform))]:
        platform.apply(manifest, e2e_namespace)
    platform.kubectl.run("rollout", "status", "deployment/git", "-n", e2e_namespace, "--timeout=300s")
    host_s3(platform, monkeypatch)
    credentials = "{username}:{password}".format(**GIT_SECRET)  # this host pushes as a user with access
    repo = DvcRepo.create(
        tmp_path,
        remote=f"s3://kubeloop/dvc/{e2e_namespace}",
        origin=f"http://{credentials}@{urlsplit(platform.service_url('git', e2e_namespace)).netloc}/data.git",
    )
    first = repo.commit(pa.table(churn_data(600, 0.0, seed=5)), "churn: first 600 rows")
    first_sha256 = hashlib.sha256((repo.work / repo.path).read_bytes()).hexdigest()

    url = f"http://git.{e2e_namespace}.svc:{GIT_PORT}/data.git"
    tj = Loop(e2e_namespace).training_job(
        "dvc",
        builtin={"algorithm": "random_forest", "seed": 13},
        hyperparameters={"n_estimators": 20, "max_depth": 4},
    )
    dvc = {"repo": url, "path": repo.path, "rev": "main", "secretRef": {"name": "git"}}
    tj["spec"]["dataset"] = {"dvc": dvc, "targetColumn": TARGET}
    platform.apply(tj, e2e_namespace)
    run = platform.wait_status("trainingjob", "dvc", e2e_namespace, succeeded, 600, "dvc Succeeded")
    read = run["status"]["provenance"]["data"]
    assert read == {
        "kind": "dvc",
        "requested": f"{url} {repo.path}@main",
        "revision": first,
        "sha256": first_sha256,
        "rows": 600,
        "details": {"files": "1"},
    }

    second = repo.commit(pa.table(churn_data(900, 0.0, seed=6)), "churn: 900 newer rows")
    assert second != first
    pinned = pinned_manifest(run)
    assert pinned["spec"]["dataset"]["dvc"]["rev"] == first
    platform.apply(pinned, e2e_namespace)
    name = pinned["metadata"]["name"]
    again = platform.wait_status("trainingjob", name, e2e_namespace, succeeded, 600, f"{name} Succeeded")
    assert again["status"]["provenance"]["data"] == read | {"requested": f"{url} {repo.path}@{first}"}
    assert again["status"]["metrics"] == run["status"]["metrics"]


def test_feast_features_joined_point_in_time_train_in_a_pod_from_a_config_map_repository(
    platform: Platform, e2e_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_s3(platform, monkeypatch)
    store = f"s3://kubeloop/feast/{e2e_namespace}"
    # 300 customers' spend on day 0 and again on day 10; each entity row is one customer on day 5 or
    # day 11, labelled by the spend valid then: only a point-in-time join lets a model learn the label
    rng = np.random.default_rng(3)
    customers = np.arange(300)
    before, after = rng.uniform(0, 100, 300), rng.uniform(0, 100, 300)
    features = pd.DataFrame(
        {
            "customer_id": np.concatenate([customers, customers]),
            "event_timestamp": [BASE] * 300 + [BASE + pd.Timedelta(days=10)] * 300,
            "spend": np.concatenate([before, after]),
        }
    )
    late = rng.random(300) < 0.5
    valid = np.where(late, after, before)
    entities = pd.DataFrame(
        {
            "customer_id": customers,
            "event_timestamp": [BASE + pd.Timedelta(days=11 if x else 5) for x in late],
            "churned": (valid > 50).astype(np.int64),
        }
    )
    entities.to_parquet(f"{store}/entities.parquet")
    repo = feast_repo(tmp_path / "feast", features, store)
    platform.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "features"},
            "data": {"feature_store.yaml": (repo / "feature_store.yaml").read_text()},
        },
        e2e_namespace,
    )
    feast = {"featureService": "churn_v1", "entities": f"{store}/entities.parquet"}
    tj = Loop(e2e_namespace).training_job("feast", builtin={"algorithm": "logistic_regression", "seed": 3})
    tj["spec"]["dataset"] = {
        "feast": {**feast, "repo": "/feast/churn", "configMapRef": {"name": "features"}},
        "targetColumn": "churned",
    }
    platform.apply(tj, e2e_namespace)
    run = platform.wait_status("trainingjob", "feast", e2e_namespace, succeeded, 600, "feast Succeeded")

    joined = load_source(
        Dataset.model_validate({"feast": {**feast, "repo": str(repo)}, "targetColumn": "churned"})
    )
    expected = joined.reference.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert run["status"]["provenance"]["data"] == expected | {
        "requested": f"feast /feast/churn churn_v1 on {store}/entities.parquet"
    }
    assert expected["rows"] == 300 and expected["kind"] == "feast"
    # the spend valid at each row's time separates the labels; the latest spend would not
    assert run["status"]["metrics"]["test_accuracy"] >= 0.9, run["status"]["metrics"]
    assert np.mean((after > 50) == (valid > 50)) < 0.85  # 0.79 with this seed
