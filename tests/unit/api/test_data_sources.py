"""Versioned data sources in the API: exactly one source per dataset (the CRD's CEL rule and the model
agree, with the field named), a lakeFS source takes its credentials by Secret reference, and a spec is
pinned to the provenance of an earlier run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.data_sources import (
    DATASET_RULES,
    FEAST_REPO_RULES,
    ONE_SOURCE,
    DataReference,
    Provenance,
)
from kubeloop.api.reproduce import NotReproducibleError, pinned_manifest, pinned_spec
from kubeloop.api.training import TrainingJobSpec
from kubeloop.cli import main

pytestmark = pytest.mark.unit

SHA = "ab" * 32
DVC = {"repo": "https://git.example.com/team/data.git", "path": "data/churn.parquet", "rev": "main"}
LAKEFS = {
    "repository": "churn",
    "ref": "main",
    "path": "tables/churn/",
    "endpoint": "http://lakefs.data:8000",
    "secretRef": {"name": "lakefs-credentials"},
}
FEAST = {"repo": "/feast/repo", "featureService": "churn_v1", "entities": "s3://data/entities.parquet"}


def training(**dataset: Any) -> dict[str, Any]:
    return {"dataset": {"targetColumn": "churned", **dataset}, "builtin": {"seed": 3}}


@pytest.mark.parametrize(
    "dataset", [{"uri": "/data/x.csv"}, {"dvc": DVC}, {"lakefs": LAKEFS}, {"feast": FEAST}]
)
def test_each_source_alone_parses(dataset: dict[str, Any]) -> None:
    parsed = TrainingJobSpec.model_validate(training(**dataset))
    assert parsed.dataset is not None
    assert TrainingJobSpec.model_validate(parsed.wire()) == parsed  # the wire form round-trips


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({}, ONE_SOURCE),
        ({"uri": "/data/x.csv", "dvc": DVC}, ONE_SOURCE),
        ({"lakefs": LAKEFS, "feast": FEAST}, ONE_SOURCE),
        ({"dvc": {**DVC, "path": ""}}, "dataset.dvc.path"),
        ({"lakefs": {**LAKEFS, "secretRef": None}}, "dataset.lakefs.secretRef"),
        ({"lakefs": {**LAKEFS, "endpoint": "lakefs:8000"}}, "dataset.lakefs.endpoint"),
        ({"lakefs": {**LAKEFS, "repository": "Churn"}}, "dataset.lakefs.repository"),
        ({"feast": {**FEAST, "repo": "relative/repo"}}, "dataset.feast.repo"),
        ({"feast": {**FEAST, "entities": "entities.parquet"}}, "dataset.feast.entities"),
        ({"uri": "/data/x.csv", "sha256": "ABC"}, "dataset.sha256"),
    ],
)
def test_refused_datasets_name_the_field(dataset: dict[str, Any], message: str) -> None:
    wire = training(**dataset)
    if "lakefs" in dataset and dataset["lakefs"]["secretRef"] is None:
        del wire["dataset"]["lakefs"]["secretRef"]
    with pytest.raises(ValidationError) as refused:
        TrainingJobSpec.model_validate(wire)
    assert message in str(refused.value)


def test_a_feast_repository_in_tmp_is_refused_by_the_api_server_only() -> None:
    # The rule is about the path in the pod; a trainer run on a host reads a repository wherever it is.
    spec = TrainingJobSpec.model_validate(training(feast={**FEAST, "repo": "/tmp/features"}))
    assert spec.dataset is not None and spec.dataset.feast is not None
    assert spec.dataset.feast.repo == "/tmp/features"  # the CRD's rule is checked in the next test


def test_the_crd_carries_the_one_source_rule_and_the_provenance_status() -> None:
    schema = crd("TrainingJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    dataset = schema["properties"]["spec"]["properties"]["dataset"]
    assert dataset["x-kubernetes-validations"] == DATASET_RULES
    assert "required" not in dataset or "uri" not in dataset["required"]
    assert (
        dataset["properties"]["feast"]["properties"]["repo"]["x-kubernetes-validations"] == FEAST_REPO_RULES
    )
    assert dataset["properties"]["lakefs"]["required"] == [
        "repository",
        "ref",
        "path",
        "endpoint",
        "secretRef",
    ]
    assert set(dataset["properties"]["lakefs"]["properties"]["secretRef"]["properties"]) == {
        "name",
        "optional",
    }
    provenance = schema["properties"]["status"]["properties"]["provenance"]["properties"]
    assert {"data", "seed", "codeVersion", "gitSha", "image", "imageId", "triggeredBy"} <= set(provenance)
    assert {"kind", "requested", "revision", "sha256", "rows"} <= set(provenance["data"]["properties"])


def provenance(kind: str, revision: str | None) -> Provenance:
    return Provenance(
        data=DataReference(kind=kind, requested="x", revision=revision, sha256=SHA, rows=10),
        seed=42,
        image="docker.io/kubeloop/trainer:dev",
        image_id="docker.io/kubeloop/trainer@sha256:" + "cd" * 32,
    )


def test_a_dvc_spec_is_pinned_to_the_commit_the_seed_and_the_image_digest() -> None:
    spec = TrainingJobSpec.model_validate(
        {**training(dvc=DVC), "register": {"modelName": "churn", "alias": "champion"}}
    )
    pinned = pinned_spec(spec, provenance("dvc", "0123abcd" * 5))
    assert pinned.dataset is not None and pinned.dataset.dvc is not None
    assert (pinned.dataset.dvc.rev, pinned.dataset.dvc.repo, pinned.dataset.sha256) == (
        "0123abcd" * 5,
        DVC["repo"],
        SHA,
    )
    assert pinned.builtin.seed == 42
    assert pinned.image == "docker.io/kubeloop/trainer@sha256:" + "cd" * 32
    assert pinned.registration is None  # a reproduction moves no alias


def test_a_lakefs_spec_is_pinned_to_the_commit_id_and_an_imported_image_keeps_its_name() -> None:
    spec = TrainingJobSpec.model_validate(training(lakefs=LAKEFS))
    recorded = provenance("lakefs", "ef" * 32).model_copy(update={"image_id": "sha256:" + "12" * 32})
    pinned = pinned_spec(spec, recorded)
    assert pinned.dataset is not None and pinned.dataset.lakefs is not None
    assert pinned.dataset.lakefs.ref == "ef" * 32
    assert pinned.image == "docker.io/kubeloop/trainer:dev"  # a bare image id names no repository


@pytest.mark.parametrize("dataset", [{"uri": "/data/x.csv"}, {"feast": FEAST}])
def test_unversioned_sources_are_pinned_by_their_sha256(dataset: dict[str, Any]) -> None:
    spec = TrainingJobSpec.model_validate(training(**dataset))
    kind = "feast" if "feast" in dataset else "uri"
    pinned = pinned_spec(spec, provenance(kind, None))
    assert pinned.dataset is not None and pinned.dataset.sha256 == SHA
    assert pinned.dataset.model_dump(exclude={"sha256"}) == spec.dataset.model_dump(exclude={"sha256"})  # type: ignore[union-attr]


def test_a_provenance_without_data_or_of_another_kind_is_refused() -> None:
    spec = TrainingJobSpec.model_validate(training(dvc=DVC))
    with pytest.raises(NotReproducibleError, match="no data reference"):
        pinned_spec(spec, Provenance(seed=1))
    with pytest.raises(NotReproducibleError, match="does not match"):
        pinned_spec(spec, provenance("lakefs", "ef" * 32))


def test_a_pinned_manifest_from_kubectl_output() -> None:
    spec = TrainingJobSpec.model_validate(training(dvc=DVC))
    status = {"provenance": provenance("dvc", "9" * 40).wire(), "phase": "Succeeded"}
    manifest = pinned_manifest(
        {"metadata": {"name": "churn", "namespace": "team-a"}, "spec": spec.wire(), "status": status}
    )
    assert manifest["metadata"] == {
        "name": "churn-repro",
        "namespace": "team-a",
        "annotations": {"kubeloop.io/reproduces": "churn"},
    }
    assert manifest["spec"]["dataset"]["dvc"]["rev"] == "9" * 40
    assert TrainingJobSpec.model_validate(manifest["spec"]).builtin.seed == 42


def test_kubeloop_reproduce_prints_the_pinned_training_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = TrainingJobSpec.model_validate(training(dvc=DVC))
    status = {"provenance": provenance("dvc", "9" * 40).wire()}
    job = {"apiVersion": "kubeloop.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "churn"}}
    path = tmp_path / "tj.yaml"
    path.write_text(yaml.safe_dump({**job, "spec": spec.wire(), "status": status}))
    assert main(["reproduce", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["metadata"]["name"] == "churn-repro"
    assert printed["spec"]["dataset"]["dvc"]["rev"] == "9" * 40
    path.write_text(yaml.safe_dump({**job, "spec": spec.wire(), "status": {}}))
    assert main(["reproduce", str(path)]) == 1
    assert "no data reference" in capsys.readouterr().err
