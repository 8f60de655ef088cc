"""Versioned training data: where a dataset comes from, and what it resolved to at the start of a run.

Besides a plain ``uri`` a dataset may name a DVC-tracked path in a git repository at a revision, a
path at a lakeFS ref, or the offline features of a Feast feature service joined point-in-time onto an
entity file. The trainer resolves each to an immutable reference (`DataReference`) before reading,
and records it in the MLflow run and in the TrainingJob status (`Provenance`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeloop.api.common import DATA_URI_PATTERN, ApiModel, LocalRef
from kubeloop.api.labels import validations

DataKind = Literal["uri", "dvc", "lakefs", "feast"]
SOURCE_FIELDS: tuple[DataKind, ...] = ("uri", "dvc", "lakefs", "feast")
SHA256_PATTERN = r"^[0-9a-f]{64}$"
ONE_SOURCE = "set exactly one of dataset.uri, dataset.dvc, dataset.lakefs or dataset.feast"
#: The keys of a lakeFS credentials Secret (the values of lakectl's access key id / secret access key).
LAKEFS_ACCESS_KEY_ID = "access_key_id"
LAKEFS_SECRET_ACCESS_KEY = "secret_access_key"
#: The variables the operator fills from that Secret, as lakectl and the lakeFS SDK read them.
LAKEFS_ACCESS_KEY_ID_ENV = "LAKECTL_CREDENTIALS_ACCESS_KEY_ID"
LAKEFS_SECRET_ACCESS_KEY_ENV = "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"

#: The keys of a git credentials Secret: an https:// repository's user, and its password or token.
GIT_USERNAME = "username"
GIT_PASSWORD = "password"
#: The variables the operator fills from that Secret; the trainer gives them to DVC's git clients.
GIT_USERNAME_ENV = "KUBELOOP_GIT_USERNAME"
GIT_PASSWORD_ENV = "KUBELOOP_GIT_PASSWORD"

#: CEL for the API server; `source_problem` says the same in Python.
DATASET_RULES: list[dict[str, str]] = [
    {
        "rule": " + ".join(f"(has(self.{name}) ? 1 : 0)" for name in SOURCE_FIELDS) + " == 1",
        "message": ONE_SOURCE,
    }
]

#: What every training pod mounts over its image: a scratch /tmp (the root filesystem is read-only),
#: and /dev/shm (the runtime's, or a larger one for several processes). The rule is the API server's
#: only: it is about the path in the pod, and a trainer run on a host may read a repository in /tmp.
POD_SCRATCH_DIRS: tuple[str, ...] = ("/tmp", "/dev/shm")
FEAST_REPO_HIDDEN = (
    "dataset.feast.repo must not be in /tmp or /dev/shm: the pod mounts its own there, over the image"
)
FEAST_REPO_RULES: list[dict[str, str]] = [
    {
        "rule": "!(self in ['/tmp', '/dev/shm'] || self.startsWith('/tmp/') || self.startsWith('/dev/shm/'))",
        "message": FEAST_REPO_HIDDEN,
    }
]


class DvcSource(ApiModel):
    """A DVC-tracked file or folder of a git repository at a revision (read with ``dvc.api``)."""

    repo: str = Field(
        min_length=1, max_length=2048, description="Git URL (https://, http://) or a checkout's path."
    )
    path: str = Field(min_length=1, max_length=1024, description="The DVC-tracked path in the repository.")
    rev: str | None = Field(
        None, min_length=1, max_length=256, description="Branch, tag or commit; default: the default branch."
    )
    secret_ref: LocalRef | None = Field(
        None,
        description=f"Secret with keys {GIT_USERNAME} and {GIT_PASSWORD} (e.g. a deploy token) for an "
        "http(s):// repository; sent to the repository's host only.",
    )


class LakeFsSource(ApiModel):
    """A file or folder at a lakeFS ref (branch, tag or commit), read through lakefs-spec."""

    repository: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$", description="The lakeFS repository.")
    ref: str = Field(min_length=1, max_length=256, description="Branch, tag or commit id.")
    path: str = Field(min_length=1, max_length=1024, description="Object or prefix inside the ref.")
    endpoint: str = Field(
        pattern=r"^https?://\S+$", description="The lakeFS server, e.g. http://lakefs:8000."
    )
    secret_ref: LocalRef = Field(
        description=f"Secret with keys {LAKEFS_ACCESS_KEY_ID} and {LAKEFS_SECRET_ACCESS_KEY}."
    )


class FeastSource(ApiModel):
    """Offline features of a Feast feature service, joined point-in-time onto an entity file: each
    row gets the feature values valid at its timestamp. Labels live in the entity file."""

    repo: str = Field(
        pattern=r"^/.+$",
        description="The feature repository (feature_store.yaml) as a path in the pod.",
        json_schema_extra=validations(FEAST_REPO_RULES),
    )
    config_map_ref: LocalRef | None = Field(
        None,
        description="A ConfigMap of the repository's files (feature_store.yaml at least), mounted "
        "read-only at repo; without it, repo must be in the image.",
    )
    feature_service: str = Field(min_length=1, max_length=253)
    entities: str = Field(
        pattern=DATA_URI_PATTERN,
        description="Parquet/CSV of entity keys, an event timestamp and the target column.",
    )
    timestamp_column: str = Field("event_timestamp", min_length=1, max_length=253)


class DataReference(ApiModel):
    """What a dataset request resolved to: enough to read exactly the same rows again."""

    kind: DataKind
    requested: str = Field(description="What the spec asked for, e.g. dvc <repo> <path>@main.")
    revision: str | None = Field(
        None,
        description="The immutable revision read: the git commit (dvc), the lakeFS commit id, "
        "the Feast registry's last update; none for a plain uri.",
    )
    sha256: str = Field(description="sha256 of the data read (Feast: of the joined frame).")
    rows: int
    details: dict[str, str] = Field(default_factory=dict, description="Kind-specific facts.")


class Provenance(ApiModel):
    """Where a trained model came from: data, seed, code and image."""

    data: DataReference | None = None
    seed: int | None = None
    code_version: str | None = Field(None, description="The kubeloop version the trainer ran.")
    git_sha: str | None = Field(None, description="The kubeloop commit the trainer ran.")
    image: str | None = Field(None, description="The image the training pod ran, as the kubelet names it.")
    image_id: str | None = Field(None, description="Its digest (containerStatuses[].imageID).")
    triggered_by: str | None = Field(None, description="The drift check that created this TrainingJob.")


#: On a TrainingJob a DriftMonitor created: ``DriftMonitor/<monitor>/<check Job>``.
TRIGGERED_BY_ANNOTATION = "kubeloop.io/triggered-by"
#: The same check Job's name as a label, to select the retrains of one check.
DRIFT_CHECK_LABEL = "kubeloop.io/drift-check"
