"""Versioned training data, with the real tools: DVC (git repository, ``dvc add``, a local DVC remote),
Feast (a local feature repository, point-in-time join) and lakeFS through lakefs-spec.

lakeFS runs against a stand-in (tests/unit/trainer/lakefs_standin.py): no lakeFS server can run on this
machine (the Go module github.com/treeverse/lakefs is refused by the Go module proxy here, and no
container registry is reachable), so the stand-in serves exactly the lakeFS REST endpoints that
lakefs-spec and the lakeFS SDK call to resolve a ref and read objects.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from kubeloop.api.data_sources import (
    GIT_PASSWORD_ENV,
    GIT_USERNAME_ENV,
    LAKEFS_ACCESS_KEY_ID_ENV,
    LAKEFS_SECRET_ACCESS_KEY_ENV,
)
from kubeloop.api.reproduce import pinned_spec
from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop.api.training import Dataset, TrainingJobSpec
from kubeloop_trainer.cli import main
from kubeloop_trainer.context import SPEC_ENV
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.sources import load_source
from tests.fixtures.data_repos import BASE, DvcRepo, feast_repo
from tests.fixtures.git_server import git_server
from tests.unit.trainer.builders import blobs
from tests.unit.trainer.conftest import PodEnvironment
from tests.unit.trainer.lakefs_standin import LakeFsState, lakefs_standin

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("dvc", "feast", "lakefs", "lakefs_spec")


def train(pod: PodEnvironment, spec: TrainingJobSpec) -> tuple[int, TrainingSummary]:
    """``kubeloop train`` in the pod environment on ``spec`` (any dataset source)."""
    pod.monkeypatch.setenv(SPEC_ENV, json.dumps(spec.wire()))
    termination_log = pod.workdir / f"termination-{len(list(pod.workdir.glob('termination-*')))}.log"
    code = main(["--termination-log", str(termination_log)])
    summary = decode(termination_log.read_text())
    assert isinstance(summary, TrainingSummary)
    return code, summary


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def dvc_dataset(repo: DvcRepo, rev: str | None, **fields: Any) -> Dataset:
    return Dataset.model_validate({"dvc": {"repo": repo.url, "path": repo.path, "rev": rev}, **fields})


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DvcRepo, str, str]:
    """Two commits on main: A (240 rows of blobs) then B (other data, 180 rows); tag ``a`` on A."""
    repo = DvcRepo.create(tmp_path_factory.mktemp("dvc"))
    commit_a = repo.commit(blobs(n_rows=240, seed=0), "data A")
    subprocess.run(["git", "tag", "a"], cwd=repo.work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "a"], cwd=repo.work, check=True)
    commit_b = repo.commit(blobs(n_rows=180, seed=1), "data B")
    return repo, commit_a, commit_b


def test_dvc_revisions_resolve_to_their_commits_and_read_their_data(
    dvc_repo: tuple[DvcRepo, str, str],
) -> None:
    repo, commit_a, commit_b = dvc_repo
    at_a, at_main = load_source(dvc_dataset(repo, "a")), load_source(dvc_dataset(repo, "main"))
    assert (at_a.reference.kind, at_a.reference.revision, at_main.reference.revision) == (
        "dvc",
        commit_a,
        commit_b,
    )
    assert at_a.reference.sha256 != at_main.reference.sha256
    # read at A after B was committed (from a bare clone: the bytes come from the DVC remote)
    assert at_a.loaded.table.equals(blobs(n_rows=240, seed=0))
    assert at_a.reference.rows == 240 and at_main.reference.rows == 180
    assert at_a.reference.sha256 == hashlib.sha256(parquet_bytes(blobs(n_rows=240, seed=0))).hexdigest()
    assert load_source(dvc_dataset(repo, commit_a)).reference == at_a.reference.model_copy(
        update={"requested": f"{repo.url} {repo.path}@{commit_a}"}
    )


def test_dvc_failures_are_bad_data(dvc_repo: tuple[DvcRepo, str, str]) -> None:
    repo, _, _ = dvc_repo
    with pytest.raises(BadDataError, match="no-such-rev"):
        load_source(dvc_dataset(repo, "no-such-rev"))
    with pytest.raises(BadDataError, match="not found"):
        load_source(Dataset.model_validate({"dvc": {"repo": repo.url, "path": "data/missing.parquet"}}))
    with pytest.raises(BadDataError, match="not the pinned"):
        load_source(dvc_dataset(repo, "a", sha256="0" * 64))


def test_a_dvc_read_leaves_no_clone_or_cache_behind(
    dvc_repo: tuple[DvcRepo, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DVC clones a repository URL and fetches its data into temporary directories that it keeps for
    the process's life; once read, the data is in memory, and a pod's /tmp is the node's disk."""
    repo, _, _ = dvc_repo
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert load_source(dvc_dataset(repo, "a")).reference.rows == 240
    with pytest.raises(BadDataError, match="no-such-rev"):
        load_source(dvc_dataset(repo, "no-such-rev"))
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_private_repository_is_read_with_the_secrets_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https repository behind basic auth (a deploy token): the variables the operator fills from
    ``dvc.secretRef`` reach both of DVC's git clients (dulwich clones a branch, libgit2 fetches a
    commit); without them, or with a wrong token, BadData names the repository and nothing prompts."""
    with git_server(tmp_path / "server", "reader", "t0ken") as url:
        authenticated = url.replace("http://", "http://reader:t0ken@")
        repo = DvcRepo.create(tmp_path / "dvc", origin=authenticated)
        commit = repo.commit(blobs(n_rows=120, seed=2), "data")
        dataset = {"dvc": {"repo": url, "path": repo.path, "rev": "main"}}
        with pytest.raises(BadDataError, match=f"cannot open DVC repository {url} .*HTTPUnauthorized"):
            load_source(Dataset.model_validate(dataset))
        monkeypatch.setenv(GIT_USERNAME_ENV, "reader")
        monkeypatch.setenv(GIT_PASSWORD_ENV, "wrong")
        with pytest.raises(BadDataError, match=f"cannot open DVC repository {url} .*HTTPUnauthorized"):
            load_source(Dataset.model_validate(dataset))
        monkeypatch.setenv(GIT_PASSWORD_ENV, "t0ken")
        read = load_source(Dataset.model_validate(dataset))
        assert (read.reference.revision, read.reference.rows) == (commit, 120)
        pinned = load_source(Dataset.model_validate({"dvc": {**dataset["dvc"], "rev": commit}}))
        assert (pinned.reference.revision, pinned.reference.sha256) == (commit, read.reference.sha256)
        assert "t0ken" not in read.reference.model_dump_json() + pinned.reference.model_dump_json()


@pytest.mark.mlflow
def test_a_run_records_its_data_and_a_pinned_rerun_reproduces_it(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    """Train on DVC ``main``; main moves on; the spec pinned from the first run's provenance reads the
    first commit's data with the same seed and gives identical metrics (scikit-learn, deterministic)."""
    repo = DvcRepo.create(tmp_path / "dvc")
    first = repo.commit(blobs(n_rows=300, seed=3), "data v1")
    spec = TrainingJobSpec.model_validate(
        {
            "dataset": {"dvc": {"repo": repo.url, "path": repo.path, "rev": "main"}},
            "builtin": {"algorithm": "random_forest", "seed": 11},
            "hyperparameters": {"n_estimators": 10, "max_depth": 3},
        }
    )
    code, summary = train(pod, spec)
    assert code == 0, summary.message
    provenance = summary.provenance
    assert provenance is not None and provenance.data is not None
    assert (provenance.data.kind, provenance.data.revision, provenance.seed) == ("dvc", first, 11)
    assert provenance.code_version and provenance.git_sha
    run = mlflow_client.get_run(summary.mlflow_run_id or "")
    assert run.data.params["dataset.revision"] == first and run.data.params["dataset.kind"] == "dvc"
    assert run.inputs is not None
    (logged,) = run.inputs.dataset_inputs
    assert (logged.dataset.source_type, logged.dataset.digest) == ("dvc", provenance.data.sha256[:36])
    assert json.loads(logged.dataset.source)["revision"] == first
    assert {tag.key: tag.value for tag in logged.tags} == {"mlflow.data.context": "training"}

    repo.commit(blobs(n_rows=200, seed=4), "data v2")  # main moves on
    code, again = train(pod, pinned_spec(spec, provenance))
    assert code == 0, again.message
    assert again.provenance is not None and again.provenance.data is not None
    assert again.provenance.data.revision == first and again.provenance.data.sha256 == provenance.data.sha256
    assert again.metrics == summary.metrics
    code, moved = train(pod, spec)  # not pinned: main's new data, other metrics
    assert code == 0 and moved.provenance is not None and moved.provenance.data is not None
    assert moved.provenance.data.revision != first and moved.metrics != summary.metrics


@pytest.mark.mlflow
def test_a_plain_uri_trains_as_before_and_names_its_bytes(pod: PodEnvironment, tmp_path: Path) -> None:
    path = tmp_path / "blobs.parquet"
    pq.write_table(blobs(n_rows=200), path)
    code, summary = pod.train(path, builtin={"algorithm": "logistic_regression", "seed": 5})
    assert code == 0, summary.message
    assert summary.provenance is not None and summary.provenance.data is not None
    data = summary.provenance.data
    assert (data.kind, data.requested, data.revision, data.rows) == ("uri", str(path), None, 200)
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_feast_joins_the_feature_values_valid_at_each_entity_timestamp(tmp_path: Path) -> None:
    repo = feast_repo(tmp_path / "feast")
    entities = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_timestamp": [
                BASE + timedelta(days=5),
                BASE + timedelta(days=11),
                BASE + timedelta(days=1),
            ],
            "label": ["stay", "churn", "stay"],
        }
    )
    entities.to_parquet(tmp_path / "entities.parquet")
    feast = {"repo": str(repo), "featureService": "churn_v1", "entities": str(tmp_path / "entities.parquet")}
    source = load_source(Dataset.model_validate({"feast": feast}))
    rows = source.loaded.table.to_pandas()
    assert list(rows.columns) == ["label", "spend"]  # keys and timestamps are not features
    # customer 1 on day 5 had spend 1.0 (the 100.0 of day 10 was not known yet): the point-in-time join
    assert sorted(zip(rows["label"], rows["spend"], strict=True)) == [
        ("churn", 100.0),
        ("stay", 1.0),
        ("stay", 5.0),
    ]
    reference = source.reference
    assert (reference.kind, reference.rows, reference.details["featureService"]) == ("feast", 3, "churn_v1")
    assert (
        reference.details["entitiesSha256"]
        == hashlib.sha256((tmp_path / "entities.parquet").read_bytes()).hexdigest()
    )
    assert reference.revision and reference.revision.startswith("20")  # the registry's last update
    assert load_source(Dataset.model_validate({"feast": feast})).reference.sha256 == reference.sha256
    shuffled = entities.iloc[[2, 0, 1]]  # the same entities in another order: the same joined frame
    shuffled.to_parquet(tmp_path / "shuffled.parquet")
    again = load_source(
        Dataset.model_validate({"feast": {**feast, "entities": str(tmp_path / "shuffled.parquet")}})
    )
    assert again.reference.sha256 == reference.sha256
    later = entities.assign(event_timestamp=entities["event_timestamp"] + timedelta(days=6))
    later.to_parquet(tmp_path / "later.parquet")
    moved = load_source(
        Dataset.model_validate({"feast": {**feast, "entities": str(tmp_path / "later.parquet")}})
    )
    assert sorted(moved.loaded.table.column("spend").to_pylist()) == [5.0, 100.0, 100.0]
    assert moved.reference.sha256 != reference.sha256
    with pytest.raises(BadDataError, match="no-such-service"):
        load_source(Dataset.model_validate({"feast": {**feast, "featureService": "no-such-service"}}))


def lakefs_dataset(endpoint: str, ref: str = "main", **fields: Any) -> Dataset:
    lakefs = {"repository": "churn", "ref": ref, "path": "tables/churn", "endpoint": endpoint}
    return Dataset.model_validate({"lakefs": {**lakefs, "secretRef": {"name": "lakefs"}}, **fields})


@pytest.fixture
def lakefs_credentials(monkeypatch: pytest.MonkeyPatch) -> LakeFsState:
    monkeypatch.setenv(LAKEFS_ACCESS_KEY_ID_ENV, "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv(LAKEFS_SECRET_ACCESS_KEY_ENV, "wJalrXUtnFEMI")
    return LakeFsState("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "churn")


def test_lakefs_resolves_the_ref_to_its_commit_and_reads_at_the_commit(
    lakefs_credentials: LakeFsState,
) -> None:
    state = lakefs_credentials
    first_bytes = parquet_bytes(blobs(n_rows=120, seed=0))
    first = state.commit("main", {"tables/churn/part-0.parquet": first_bytes, "tables/churn/_SUCCESS": b""})
    with lakefs_standin(state) as endpoint:
        source = load_source(lakefs_dataset(endpoint))
        reference = source.reference
        assert (reference.kind, reference.revision, reference.rows) == ("lakefs", first, 120)
        assert reference.requested == "lakefs://churn/main/tables/churn"
        assert reference.sha256 == hashlib.sha256(first_bytes).hexdigest()
        assert state.object_reads and set(state.object_reads) == {first}  # never the moving branch
        second = state.commit(
            "main", {"tables/churn/part-0.parquet": parquet_bytes(blobs(n_rows=90, seed=1))}
        )
        moved = load_source(lakefs_dataset(endpoint))
        assert (moved.reference.revision, moved.reference.rows) == (second, 90)
        pinned = load_source(lakefs_dataset(endpoint, ref=first, sha256=reference.sha256))
        assert pinned.loaded.table.equals(source.loaded.table)
    assert state.unknown == []  # the stand-in served every call lakefs-spec made


def test_lakefs_refusals_are_bad_data(
    lakefs_credentials: LakeFsState, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = lakefs_credentials
    state.commit("main", {"tables/churn/part-0.parquet": parquet_bytes(blobs(n_rows=10))})
    with lakefs_standin(state) as endpoint:
        with pytest.raises(BadDataError, match="cannot resolve lakefs://churn/nope"):
            load_source(lakefs_dataset(endpoint, ref="nope"))
        monkeypatch.setenv(LAKEFS_SECRET_ACCESS_KEY_ENV, "wrong")
        with pytest.raises(BadDataError, match="cannot resolve"):
            load_source(lakefs_dataset(endpoint))
        monkeypatch.delenv(LAKEFS_SECRET_ACCESS_KEY_ENV)
        with pytest.raises(BadDataError, match="no lakeFS credentials"):
            load_source(lakefs_dataset(endpoint))


def test_the_trainer_imports_no_data_tool_until_a_dataset_asks(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(blobs(n_rows=20), path)
    probe = (
        "import sys\n"
        "import kubeloop_trainer.cli, kubeloop_trainer.runner\n"
        "from kubeloop.api.training import Dataset\n"
        "from kubeloop_trainer.sources import load_source\n"
        f"load_source(Dataset(uri={str(path)!r}))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), flush=True)\n"
        # what is imported is the question, not the interpreter's teardown (a native thread pool
        # sometimes aborts it under load: "terminate called without an active exception")
        "import os; os._exit(0)\n"
    )
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'trainer'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["feast", "dvc"])
def test_importing_a_data_tool_leaves_the_environment_as_it_was(kind: str, tmp_path: Path) -> None:
    """Feast's import sets PROMETHEUS_MULTIPROC_DIR: every process started after it would keep its
    Prometheus metrics in files (a server under test, a trial worker). The directory it makes there
    goes in ``tmp_path``: the probe's ``os._exit`` skips Feast's removal of it at exit."""
    probe = (
        "import os\n"
        "from kubeloop_trainer.sources import require\n"
        "before = dict(os.environ)\n"
        f"require({kind!r}, {kind!r})\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())), flush=True)\n"
        "os._exit(0)\n"
    )
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'trainer'}", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
