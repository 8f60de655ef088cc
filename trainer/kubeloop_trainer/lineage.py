"""What a run was trained from, recorded on its MLflow run and handed to the operator.

The resolved data reference goes to the run as params (``dataset.*``) and as a dataset input (what
``mlflow.log_input`` logs; through the explicit client here, as everything this trainer tracks):
its source is the reference as JSON, its digest the data's sha256 (cut to the 36 characters MLflow
stores). The summary carries it with the seed and the code version to ``status.provenance``.
"""

from __future__ import annotations

import json

from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from kubeloop.api.data_sources import DataReference, Provenance
from kubeloop.api.training import TrainingJobSpec
from kubeloop_trainer.provenance import git_sha, package_version
from kubeloop_trainer.recording import Recorder

MLFLOW_DIGEST_LIMIT = 36
MLFLOW_NAME_LIMIT = 500


def reference_params(reference: DataReference) -> dict[str, object]:
    params: dict[str, object] = {
        "dataset.kind": reference.kind,
        "dataset.requested": reference.requested,
    }
    if reference.revision is not None:
        params["dataset.revision"] = reference.revision
    params |= {f"dataset.{name}": value for name, value in reference.details.items()}
    return params


def mlflow_dataset(reference: DataReference) -> MlflowDataset:
    return MlflowDataset(
        name=reference.requested[:MLFLOW_NAME_LIMIT],
        digest=reference.sha256[:MLFLOW_DIGEST_LIMIT],
        source_type=reference.kind,
        source=reference.model_dump_json(by_alias=True, exclude_none=True),
        profile=json.dumps({"num_rows": reference.rows}),
    )


def record_reference(recorder: Recorder, reference: DataReference) -> None:
    """Chief only (a recorder without a tracker does nothing)."""
    recorder.params(reference_params(reference))
    if recorder.tracker is None or recorder.run_id is None:
        return
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training")]
    recorder.tracker.client.log_inputs(
        recorder.run_id, datasets=[DatasetInput(mlflow_dataset(reference), tags)]
    )


def run_provenance(spec: TrainingJobSpec, reference: DataReference) -> Provenance:
    """The trainer's part; the operator adds the image the pod ran."""
    return Provenance(
        data=reference,
        seed=spec.builtin.seed,
        code_version=package_version("kubeloop") or "unknown",
        git_sha=git_sha(),
    )
