"""Where a hyperparameter study lives when its trials run in several pods (``tuning.parallelism``)."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from kubeloop.api.common import ApiModel

#: A Secret's name (DNS-1123 subdomain) and a key in it (Kubernetes' rule for data keys).
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

NEEDS_STORAGE = (
    "tuning.parallelism > 1 needs tuning.storage.secretRef (a Secret holding the study database's URL)"
)
PARALLELISM_RULES: list[dict[str, str]] = [
    {"rule": "self.parallelism <= 1 || has(self.storage)", "message": NEEDS_STORAGE},
]


class SecretKeyRef(ApiModel):
    """One key of a Secret in the TrainingJob's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)


class StudyStorage(ApiModel):
    """The study's database: the Secret's value is a SQLAlchemy URL such as
    ``postgresql+psycopg://user:password@host:5432/db``; it reaches the pods only as a secret env var."""

    secret_ref: SecretKeyRef


class _Parallel(Protocol):
    parallelism: int
    storage: StudyStorage | None


def parallelism_problem(tuning: _Parallel) -> str | None:
    """What PARALLELISM_RULES refuse, with the same message; None when it is fine."""
    if tuning.parallelism > 1 and tuning.storage is None:
        return NEEDS_STORAGE
    return None
