"""tuning.parallelism and tuning.storage: the model refuses what the CRD's CEL rule refuses, with the
same message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.study import NEEDS_STORAGE, PARALLELISM_RULES
from kubeloop.api.training import TrainingJobSpec

pytestmark = pytest.mark.unit

STORAGE = {"secretRef": {"name": "study-db", "key": "url"}}


def spec(**tuning: Any) -> dict[str, Any]:
    return {
        "dataset": {"uri": "s3://data/train.parquet"},
        "tuning": {
            "objective": {"metric": "val_f1"},
            "searchSpace": {"c": {"type": "float", "low": 0.1, "high": 1}},
        }
        | tuning,
    }


def tuning_schema() -> dict[str, Any]:
    root: dict[str, Any] = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    node: dict[str, Any] = root["properties"]["spec"]["properties"]["tuning"]
    return node


def test_defaults_keep_the_single_pod_search() -> None:
    tuning = TrainingJobSpec.model_validate(spec()).tuning
    assert tuning is not None and (tuning.parallelism, tuning.parallel_trials, tuning.storage) == (1, 1, None)


def test_parallel_workers_with_storage_parse() -> None:
    tuning = TrainingJobSpec.model_validate(spec(parallelism=8, parallelTrials=2, storage=STORAGE)).tuning
    assert tuning is not None and tuning.storage is not None
    assert (tuning.parallelism, tuning.storage.secret_ref.name, tuning.storage.secret_ref.key) == (
        8,
        "study-db",
        "url",
    )
    assert (
        TrainingJobSpec.model_validate(spec(storage=STORAGE)).tuning is not None
    )  # one worker, in the database


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ({"parallelism": 2}, NEEDS_STORAGE),
        ({"parallelism": 0, "storage": STORAGE}, "greater than or equal to 1"),
        ({"parallelism": 65, "storage": STORAGE}, "less than or equal to 64"),
        ({"parallelism": 2, "storage": {"secretRef": {"name": "Study_DB", "key": "url"}}}, "secretRef.name"),
        ({"parallelism": 2, "storage": {"secretRef": {"name": "db", "key": "a/b"}}}, "secretRef.key"),
        ({"parallelism": 2, "storage": {"secretRef": {"name": "db"}}}, "secretRef.key"),
        ({"parallelism": 2, "storage": {"url": "postgresql://u:p@h/db"}}, "storage.url"),  # never inline
    ],
)
def test_refused(tuning: dict[str, Any], message: str) -> None:
    with pytest.raises(
        ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        TrainingJobSpec.model_validate(spec(**tuning))


def test_the_crd_carries_the_rule_and_the_bounds() -> None:
    schema = tuning_schema()
    assert schema["x-kubernetes-validations"] == PARALLELISM_RULES
    assert "tuning.parallelism" in NEEDS_STORAGE and "tuning.storage" in NEEDS_STORAGE
    parallelism = schema["properties"]["parallelism"]
    assert (parallelism["default"], parallelism["minimum"], parallelism["maximum"]) == (1, 1, 64)
    secret_ref = schema["properties"]["storage"]["properties"]["secretRef"]
    assert secret_ref["required"] == ["name", "key"]
    assert schema["properties"]["storage"]["required"] == ["secretRef"]
