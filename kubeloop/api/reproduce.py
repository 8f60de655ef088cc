"""A TrainingJob spec pinned to what an earlier run recorded in ``status.provenance``.

The pinned spec reads the data at the revision the earlier run resolved (the git commit of a DVC
revision, the lakeFS commit id of a ref), requires the same sha256 (a plain URI or Feast features
that changed since fail the run as BadData instead of training on other data), trains with the same
seed and, where the kubelet reported a digest, runs the very image by digest. A reproduction
registers nothing (no new model version, no alias moved), so it drops ``register`` and ``challenge``.
"""

from __future__ import annotations

from typing import Any

from kubeloop.api.data_sources import Provenance
from kubeloop.api.training import Dataset, TrainingJobSpec


class NotReproducibleError(ValueError):
    """The provenance lacks what a pinned spec needs."""


def pinned_dataset(dataset: Dataset, provenance: Provenance) -> Dataset:
    data = provenance.data
    if data is None:
        raise NotReproducibleError("status.provenance has no data reference (the run never read its data)")
    update: dict[str, Any] = {"sha256": data.sha256}
    if dataset.dvc is not None and data.kind == "dvc" and data.revision:
        update["dvc"] = dataset.dvc.model_copy(update={"rev": data.revision})
    elif dataset.lakefs is not None and data.kind == "lakefs" and data.revision:
        update["lakefs"] = dataset.lakefs.model_copy(update={"ref": data.revision})
    elif data.kind not in ("uri", "feast"):
        raise NotReproducibleError(f"status.provenance.data ({data.kind}) does not match spec.dataset")
    return dataset.model_copy(update=update)


def pinned_image(provenance: Provenance) -> str | None:
    """``repository@sha256:...`` where the kubelet reported one; else the image reference it ran.
    (An image without a repository digest, e.g. one imported locally, has a bare ``sha256:`` id.)"""
    image_id = (provenance.image_id or "").removeprefix("docker-pullable://")
    if "@sha256:" in image_id:
        return image_id
    return provenance.image


def pinned_spec(spec: TrainingJobSpec, provenance: Provenance) -> TrainingJobSpec:
    """``spec`` reading the same data, with the same seed, on the same image."""
    if spec.dataset is None:
        raise NotReproducibleError("only the built-in trainer's spec.dataset can be pinned")
    update: dict[str, Any] = {
        "dataset": pinned_dataset(spec.dataset, provenance),
        "registration": None,
        "challenge": None,
    }
    if provenance.seed is not None:
        update["builtin"] = spec.builtin.model_copy(update={"seed": provenance.seed})
    if image := pinned_image(provenance):
        update["image"] = image
    pinned = spec.model_copy(update=update)
    return TrainingJobSpec.model_validate(pinned.wire())  # the same checks as a spec from the API server


def pinned_manifest(training_job: dict[str, Any]) -> dict[str, Any]:
    """A new TrainingJob manifest (``kubectl get tj NAME -o yaml`` in) that re-runs it pinned."""
    metadata = training_job.get("metadata") or {}
    provenance = Provenance.model_validate((training_job.get("status") or {}).get("provenance") or {})
    spec = pinned_spec(TrainingJobSpec.model_validate(training_job.get("spec") or {}), provenance)
    name = str(metadata.get("name") or "trainingjob")
    pinned_metadata: dict[str, Any] = {
        "name": f"{name[:53]}-repro",
        "annotations": {"kubeloop.io/reproduces": name},
    }
    if namespace := metadata.get("namespace"):
        pinned_metadata["namespace"] = namespace
    return {
        "apiVersion": training_job.get("apiVersion", "kubeloop.io/v1alpha1"),
        "kind": "TrainingJob",
        "metadata": pinned_metadata,
        "spec": spec.wire(),
    }
