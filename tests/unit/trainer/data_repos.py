"""Real versioned-data repositories for the trainer tests: a git + DVC repository with a local DVC
remote (pushed, and cloned bare so that readers get the data from the remote, as a pod would), and a
local Feast feature repository (file offline store, local registry)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kubeloop_trainer.sources import environment_restored

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "DVC_NO_ANALYTICS": "1",
}


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class DvcRepo:
    """A working repository (``work``), its DVC remote (``remote``) and a bare git origin (``origin``)."""

    work: Path
    remote: Path
    origin: Path
    path: str = "data/train.parquet"

    @classmethod
    def create(cls, root: Path) -> DvcRepo:
        repo = cls(work=root / "work", remote=root / "dvc-remote", origin=root / "origin.git")
        repo.work.mkdir(parents=True)
        run(["git", "init", "-q", "-b", "main"], repo.work)
        repo.dvc("init", "-q")
        repo.dvc("remote", "add", "-d", "store", str(repo.remote))
        run(["git", "init", "-q", "--bare", "-b", "main", str(repo.origin)], root)
        run(["git", "remote", "add", "origin", str(repo.origin)], repo.work)
        return repo

    def dvc(self, *args: str) -> str:
        return run([sys.executable, "-m", "dvc", *args], self.work)

    def commit(self, table: pa.Table, message: str) -> str:
        """Track ``table`` at ``path`` with DVC, commit, push data and git; the commit sha."""
        target = self.work / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        self.dvc("add", "-q", self.path)
        run(["git", "add", "-A"], self.work)
        run(["git", "commit", "-q", "-m", message], self.work)
        self.dvc("push", "-q")
        run(["git", "push", "-q", "origin", "main"], self.work)
        return run(["git", "rev-parse", "HEAD"], self.work)

    @property
    def url(self) -> str:
        return f"file://{self.origin}"


BASE = datetime(2025, 1, 1, tzinfo=UTC)
FEATURE_STORE_YAML = """\
project: churn
registry: {root}/registry.db
provider: local
offline_store:
  type: file
online_store:
  type: sqlite
  path: {root}/online.db
entity_key_serialization_version: 3
"""


def feast_repo(root: Path) -> Path:
    """A feature repository with one feature view (``spend``, by ``customer_id``) and a feature service
    ``churn_v1``. Customer 1's spend is 1.0 from day 0 and 100.0 from day 10; customer 2's 5.0."""
    with environment_restored():
        from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
        from feast.types import Float32
        from feast.value_type import ValueType

    root.mkdir(parents=True)
    (root / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(root=root))
    features = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_timestamp": [BASE, BASE + timedelta(days=10), BASE],
            "spend": [1.0, 100.0, 5.0],
        }
    )
    features.to_parquet(root / "spend.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(path=str(root / "spend.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(
        name="spend_stats",
        entities=[customer],
        ttl=timedelta(days=365),
        schema=[Field(name="spend", dtype=Float32)],
        source=source,
    )
    FeatureStore(repo_path=str(root)).apply(
        [customer, view, FeatureService(name="churn_v1", features=[view])]
    )
    return root
