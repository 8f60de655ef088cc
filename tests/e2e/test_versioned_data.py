"""Versioned data on real pods: a TrainingJob reads a DVC-tracked dataset the way teams keep one, its
git repository on a git server (smart HTTP) and its data on an S3 DVC remote, in a restricted pod
(read-only root file system); status.provenance names the commit and the bytes it read; once main moved
on, the re-run pinned from that provenance reads the first commit's data again, to identical metrics.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kubeloop.api.reproduce import pinned_manifest
from kubeloop_operator.render.common import restricted_container_security, restricted_pod_security
from tests.e2e.load import trainer_image
from tests.e2e.loop import Loop, succeeded
from tests.e2e.platform import SYSTEM_NAMESPACE, Platform
from tests.fixtures.churn import TARGET, churn_data
from tests.fixtures.data_repos import DvcRepo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

GIT_PORT = 8000
# dulwich (in the trainer image, one of DVC's git clients) serves one bare repository over smart HTTP,
# push included, on aiohttp (HTTP/1.1: libgit2, DVC's other git client, cannot read refs from dulwich's
# wsgiref server); the default branch is main, as on the git servers teams use
SERVE_GIT = f"""
from aiohttp import web
from dulwich.aiohttp.server import create_repo_app
from dulwich.repo import Repo
repo = Repo.init_bare("/tmp/data.git", mkdir=True)
repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
app = web.Application()
app.add_subapp("/data.git/", create_repo_app(repo))
web.run_app(app, port={GIT_PORT})
"""


def git_server(image: str) -> list[dict[str, Any]]:
    """A git server Deployment (restricted Pod Security Standard, as the operator renders it) and its
    Service `git`."""
    labels = {"app": "git"}
    container = {
        "name": "git",
        "image": image,
        "command": ["python", "-c", SERVE_GIT],
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


def test_a_dvc_dataset_from_git_and_s3_trains_in_a_pod_and_its_pinned_rerun_reads_the_same_commit(
    platform: Platform, e2e_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for manifest in git_server(trainer_image(platform)):
        platform.apply(manifest, e2e_namespace)
    platform.kubectl.run("rollout", "status", "deployment/git", "-n", e2e_namespace, "--timeout=300s")
    # this host pushes with the S3 Secret's credentials, to the S3 server as this host reaches it; the
    # pods read with the same Secret (envFrom), whose AWS_ENDPOINT_URL is the in-cluster one
    for key, value in platform.secret("kubeloop-s3", SYSTEM_NAMESPACE).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", platform.service_url("s3", SYSTEM_NAMESPACE))
    repo = DvcRepo.create(
        tmp_path,
        remote=f"s3://kubeloop/dvc/{e2e_namespace}",
        origin=f"{platform.service_url('git', e2e_namespace)}/data.git",
    )
    first = repo.commit(pa.table(churn_data(600, 0.0, seed=5)), "churn: first 600 rows")
    first_sha256 = hashlib.sha256((repo.work / repo.path).read_bytes()).hexdigest()

    url = f"http://git.{e2e_namespace}.svc:{GIT_PORT}/data.git"
    tj = Loop(e2e_namespace).training_job(
        "dvc",
        builtin={"algorithm": "random_forest", "seed": 13},
        hyperparameters={"n_estimators": 20, "max_depth": 4},
    )
    tj["spec"]["dataset"] = {"dvc": {"repo": url, "path": repo.path, "rev": "main"}, "targetColumn": TARGET}
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
