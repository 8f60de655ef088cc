"""The fairness gate in whole `kubeloop train` runs against a real MLflow server: a model trained on
biased data is refused registration, an unbiased one is registered; the numbers are fairlearn's on
the test split of the served model; the sensitive columns never reach the model's input; the
operator derives the FairnessGate condition from what the pod left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from mlflow.tracking import MlflowClient

from kubeloop.api.fairness import FairnessResult
from kubeloop.api.summaries import TrainingSummary
from kubeloop.api.training import TrainingJobStatus
from kubeloop_operator.status.training import derive_training_status
from kubeloop_trainer.onnx_export import FEATURE_NAMES_KEY, onnx_outputs
from kubeloop_trainer.runner import prepare
from kubeloop_trainer.tags import FAIRNESS_TAG
from tests.unit.trainer.builders import lending, spec, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]

THRESHOLDS = {"demographicParityDifference": 0.1, "equalizedOddsDifference": 0.1}


def fields(*attributes: str, **extra: Any) -> dict[str, Any]:
    return {
        "builtin": {"algorithm": "logistic_regression"},
        "register": {"modelName": "loans", "alias": "champion"},
        "fairness": {
            "sensitiveAttributes": list(attributes),
            "positiveClass": "approved",
            "thresholds": THRESHOLDS,
        },
        **extra,
    }


def what_the_operator_shows(message: str) -> TrainingJobStatus:
    job = {
        "metadata": {"name": "loans"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
    }
    pod = {
        "metadata": {"name": "loans-x", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": message}}}]},
    }
    return derive_training_status(
        TrainingJobStatus(), job, [pod], 1, False, "http://mlflow", fairness_gated=True
    )


def condition(status: TrainingJobStatus, kind: str) -> tuple[str, str, str]:
    found = next(c for c in status.conditions if c.type == kind)
    return found.status, found.reason, found.message


def served_model(client: MlflowClient, run_id: str, tmp_path: Path) -> bytes:
    local = client.download_artifacts(run_id, "model/model.onnx", str(tmp_path / run_id))
    return Path(local).read_bytes()


def check_against_fairlearn(result: FairnessResult, dataset: Path, model: bytes, **spec_fields: Any) -> None:
    """Recompute the differences with fairlearn on the run's test split, from the served model."""
    test = prepare(spec(dataset, **spec_fields)).data.test
    assert test.sensitive is not None
    approved = (onnx_outputs(model, test.x, "classification").argmax(axis=1) == 0).astype(int)
    truth = (test.y == 0).astype(int)  # classes sorted: approved=0, denied=1
    groups = {name: test.sensitive[:, i] for i, name in enumerate(result.sensitive_attributes)}
    dpd = demographic_parity_difference(truth, approved, sensitive_features=groups)
    eod = equalized_odds_difference(truth, approved, sensitive_features=groups)
    assert result.demographic_parity_difference == pytest.approx(dpd, abs=1e-12)
    assert result.equalized_odds_difference == pytest.approx(eod, abs=1e-12)
    assert result.rows == len(test) == sum(g.count for g in result.groups)
    first = result.groups[0]
    in_first = np.all(test.sensitive == [part.split("=")[1] for part in first.group.split(", ")], axis=1)
    assert first.selection_rate == pytest.approx(approved[in_first].mean(), abs=1e-12)


def input_width(model: bytes) -> tuple[int, list[str]]:
    proto = onnx.load_from_string(model)
    width = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    metadata = {p.key: p.value for p in proto.metadata_props}
    return width, json.loads(metadata[FEATURE_NAMES_KEY])


def assert_recorded(client: MlflowClient, summary: TrainingSummary, scratch: Path) -> None:
    """The differences as metrics, the per-group table as an artifact, the verdict as a tag."""
    assert summary.fairness is not None
    run = client.get_run(summary.mlflow_run_id or "")
    metrics = run.data.metrics
    assert metrics["fairness.demographic_parity_difference"] == pytest.approx(
        summary.fairness.demographic_parity_difference
    )
    assert metrics["fairness.equalized_odds_difference"] == pytest.approx(
        summary.fairness.equalized_odds_difference
    )
    assert run.data.tags[FAIRNESS_TAG] == summary.fairness.outcome
    local = client.download_artifacts(run.info.run_id, "fairness/groups.json", str(scratch))
    table = json.loads(Path(local).read_text())
    assert table["outcome"] == summary.fairness.outcome
    assert [g["group"] for g in table["perClass"][0]["groups"]] == [g.group for g in summary.fairness.groups]
    first = summary.fairness.groups[0]
    name = first.group.replace("=", "_").replace(",", "_")
    assert metrics[f"fairness.group.{name}.selection_rate"] == pytest.approx(first.selection_rate)


def assert_importance(client: MlflowClient, asked: str, not_asked: str, scratch: Path) -> None:
    """Global importance where the spec asked for it: the two informative features lead."""
    local = client.download_artifacts(asked, "importance/importance.json", str(scratch))
    importance = json.loads(Path(local).read_text())
    assert importance["method"] == "permutation" and set(importance["meanAbsShap"]) == {"approved", "denied"}
    ranked = sorted(importance["meanAbsShap"]["approved"].items(), key=lambda item: -item[1])
    assert {name for name, _ in ranked[:2]} == {"f0", "f1"}
    assert (
        Path(client.download_artifacts(asked, "importance/importance.png", str(scratch)))
        .read_bytes()
        .startswith(b"\x89PNG")
    )
    assert client.list_artifacts(not_asked, "importance") == []


def assert_operator_view(
    refused: TrainingSummary, refused_message: str, accepted: TrainingSummary, accepted_message: str
) -> None:
    """The status the operator derives from what each pod left (the contract boundary)."""
    assert refused.fairness is not None
    refused_status = what_the_operator_shows(refused_message)
    accepted_status = what_the_operator_shows(accepted_message)
    assert refused_status.fairness == refused.fairness and accepted_status.fairness == accepted.fairness
    status, reason, message = condition(refused_status, "FairnessGate")
    assert (status, reason) == ("False", "FairnessThresholdExceeded")
    assert "demographicParityDifference" in message and "> 0.1" in message
    assert f"{refused.fairness.demographic_parity_difference:.4g}" in message
    assert "sex=F" in message and "sex=M" in message
    assert refused_status.phase == "Succeeded" and refused_status.registered_model is None
    assert (
        "the model was not registered: fairness threshold exceeded"
        in condition(refused_status, "Succeeded")[2]
    )
    assert condition(accepted_status, "FairnessGate")[:2] == ("True", "FairnessWithinThresholds")
    assert accepted_status.registered_model == accepted.registered_model


def test_a_biased_model_is_refused_registration_an_unbiased_one_is_registered(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    biased = write_parquet(lending(biased=True), tmp_path / "biased.parquet")
    unbiased = write_parquet(lending(biased=False), tmp_path / "unbiased.parquet")
    biased_fields = fields("sex", "age_band")  # age_band is numeric: a model input unless named here
    code, refused = pod.train(biased, **biased_fields)
    assert code == 0, refused.message  # training worked; the gate said no: not a failed run
    refused_message = pod.termination_message
    unbiased_fields = fields("sex", importance={"sampleRows": 100})
    code, accepted = pod.train(unbiased, **unbiased_fields)
    assert code == 0, accepted.message
    accepted_message = pod.termination_message

    assert refused.fairness is not None and accepted.fairness is not None
    print(f"\nbiased:   {refused.fairness.message}\nunbiased: {accepted.fairness.message}")
    assert refused.fairness.outcome == "Failed" and accepted.fairness.outcome == "Passed"
    assert refused.fairness.demographic_parity_difference is not None
    assert refused.fairness.demographic_parity_difference > 0.3
    assert (accepted.fairness.demographic_parity_difference or 1.0) < 0.05

    # the registry: only the unbiased model is there
    assert refused.registered_model is None
    assert accepted.registered_model is not None and accepted.registered_model.alias == "champion"
    versions = mlflow_client.search_model_versions("name='loans'")
    assert [(v.version, v.run_id) for v in versions] == [("1", accepted.mlflow_run_id)]
    assert versions[0].tags[FAIRNESS_TAG] == "Passed"

    # the numbers are fairlearn's, on the test split, from the model a server would load
    refused_model = served_model(mlflow_client, refused.mlflow_run_id or "", tmp_path)
    accepted_model = served_model(mlflow_client, accepted.mlflow_run_id or "", tmp_path)
    check_against_fairlearn(refused.fairness, biased, refused_model, **biased_fields)
    check_against_fairlearn(accepted.fairness, unbiased, accepted_model, **unbiased_fields)

    # sensitive columns never reach the model's inputs
    assert input_width(refused_model) == (4, ["f0", "f1", "f2", "f3"])
    assert input_width(accepted_model) == (5, ["f0", "f1", "f2", "f3", "age_band"])

    for summary in (refused, accepted):
        assert_recorded(mlflow_client, summary, tmp_path)
    assert_importance(mlflow_client, accepted.mlflow_run_id or "", refused.mlflow_run_id or "", tmp_path)
    assert_operator_view(refused, refused_message, accepted, accepted_message)


def test_a_missing_sensitive_column_fails_before_training(pod: PodEnvironment, tmp_path: Path) -> None:
    data = write_parquet(lending(n_rows=200).drop_columns(["sex"]), tmp_path / "no-sex.parquet")
    code, summary = pod.train(data, **fields("sex"))
    assert (code, summary.failure_reason) == (1, "BadData")
    assert "sensitive attributes ['sex'] not in the dataset" in (summary.message or "")
