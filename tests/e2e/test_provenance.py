"""Provenance on real pods: a TrainingJob's status names the data it read (sha256 of the S3 object), its
seed, the kubeloop version and the image digest the kubelet ran; the TrainingJob `kubeloop reproduce`
makes from it trains on the same bytes with the same seed, on the image by digest, to identical metrics;
once the data changed, the pinned re-run refuses it (BadData) instead of training on other data.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from kubeloop.api.reproduce import pinned_manifest
from tests.e2e.loop import Loop, succeeded
from tests.e2e.platform import Platform
from tests.fixtures.churn import churn_data

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def failed(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Failed"


def test_a_pinned_rerun_from_status_provenance_gives_identical_metrics(
    platform: Platform, e2e_namespace: str
) -> None:
    loop = Loop(e2e_namespace, model=f"provenance-{e2e_namespace}")
    uri = f"s3://kubeloop/datasets/{e2e_namespace}/provenance.parquet"
    platform.put_table(uri, churn_data(2000, 0.0, seed=5))
    tj = loop.training_job(
        "prov",
        builtin={"algorithm": "random_forest", "seed": 13},
        hyperparameters={"n_estimators": 20, "max_depth": 4},
    )
    tj["spec"]["dataset"]["uri"] = uri
    platform.apply(tj, e2e_namespace)
    first = platform.wait_status("trainingjob", "prov", e2e_namespace, succeeded, 600, "prov Succeeded")
    provenance = first["status"]["provenance"]
    data_sha256 = hashlib.sha256(platform.s3().cat_file(uri.removeprefix("s3://"))).hexdigest()
    assert provenance["data"] == {
        "kind": "uri",
        "requested": uri,
        "sha256": data_sha256,
        "rows": 2000,
        "details": {},
    }
    assert provenance["seed"] == 13 and provenance["codeVersion"]
    assert len(provenance["gitSha"]) == 40, provenance  # baked into the trainer image
    assert "sha256:" in provenance["imageId"], provenance

    pinned = pinned_manifest(first)
    assert pinned["spec"]["dataset"]["sha256"] == data_sha256
    platform.apply(pinned, e2e_namespace)
    name = pinned["metadata"]["name"]
    again = platform.wait_status("trainingjob", name, e2e_namespace, succeeded, 600, f"{name} Succeeded")
    assert again["status"]["metrics"] == first["status"]["metrics"]
    assert again["status"]["provenance"]["data"]["sha256"] == data_sha256
    if "@sha256:" in provenance["imageId"]:  # a repository digest: the re-run ran exactly that image
        assert again["status"]["provenance"]["imageId"] == provenance["imageId"]

    platform.put_table(uri, churn_data(2000, 0.0, seed=6))  # the data under the URI changes
    changed = {**pinned, "metadata": {**pinned["metadata"], "name": "prov-changed"}}
    platform.apply(changed, e2e_namespace)
    refused = platform.wait_status("trainingjob", "prov-changed", e2e_namespace, failed, 600, "refused")
    reasons = {c["type"]: c["reason"] for c in refused["status"]["conditions"]}
    assert reasons["Succeeded"] == "BadData"
