"""Fine-tuning: a new head on a base network, frozen blocks, then gradual unfreezing."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from kubeloop.api.training import FineTune, UnfreezeStep
from kubeloop.registry import resolve_registered_model
from kubeloop_trainer.errors import BadDataError, BaseModelError
from kubeloop_trainer.features import build_features
from kubeloop_trainer.finetune import fetch_checkpoint, fine_tune_phases, fine_tune_torch
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.splits import Part
from kubeloop_trainer.torch_fit import LoopSettings, Phase, fit_network
from kubeloop_trainer.torch_models import fit_torch, load_checkpoint
from tests.unit.trainer.builders import blobs, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = pytest.mark.unit

State = dict[str, torch.Tensor]


def part(n_classes: int, seed: int) -> Part:
    features = build_features(
        blobs(n_rows=120, n_features=4, n_classes=n_classes, seed=seed), "label", "classification"
    )
    return Part(features.x, features.y)


def base_checkpoint() -> bytes:
    """A 3-class MLP with two hidden blocks, trained briefly, as the trainer checkpoints it."""
    recipe = Recipe("mlp", "classification", 4, 3, {"hiddenUnits": [16, 8], "epochs": 2}, seed=1)
    data = part(3, seed=1)
    return fit_torch(recipe, data, data).checkpoint()


def block_changed(before: State, after: State, block: int) -> bool:
    prefix = f"blocks.{block}."
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_schedule_unfreezes_cumulatively_from_the_top() -> None:
    fine_tune = FineTune(
        base_model_uri="models:/base@v1",
        head_epochs=3,
        head_learning_rate=0.01,
        schedule=[
            UnfreezeStep(epochs=2, unfreeze_layers=1, learning_rate=1e-3),
            UnfreezeStep(epochs=1, unfreeze_layers=2, learning_rate=1e-4),
        ],
    )
    assert fine_tune_phases(fine_tune) == [
        Phase(3, 0.01, trainable_blocks=0),
        Phase(2, 1e-3, trainable_blocks=1),
        Phase(1, 1e-4, trainable_blocks=3),
    ]


def test_frozen_blocks_stay_put_until_unfrozen() -> None:
    network, _, _, _ = load_checkpoint(base_checkpoint())
    base = copy.deepcopy(network.state_dict())
    network.replace_head(2)
    new_data = part(2, seed=2)
    snapshots: dict[int, State] = {}

    def snapshot(epoch: int, metrics: dict[str, float]) -> None:
        snapshots[epoch] = copy.deepcopy(network.state_dict())

    phases = [Phase(2, 0.05, trainable_blocks=0), Phase(2, 0.01, trainable_blocks=1)]
    settings = LoopSettings(task="classification", batch_size=16, patience=0)
    fit_network(network, new_data, new_data, phases, settings, on_epoch=snapshot)

    after_head_phase, after_unfreezing = snapshots[2], snapshots[4]
    assert after_head_phase["head.weight"].shape == (2, 8)
    assert not block_changed(base, after_head_phase, 0)
    assert not block_changed(base, after_head_phase, 1)
    assert block_changed(after_head_phase, after_unfreezing, 1)  # the top block, unfrozen
    assert not block_changed(base, after_unfreezing, 0)  # the bottom block, never unfrozen
    assert not torch.equal(after_head_phase["head.weight"], after_unfreezing["head.weight"])


def test_base_must_fit_the_data(tmp_path: Path) -> None:
    checkpoint = base_checkpoint()
    recipe = Recipe("mlp", "classification", n_features=5, n_classes=2, seed=0)
    fine_tune = FineTune(base_model_uri="/unused")
    wider = Part(torch.zeros(8, 5).numpy(), torch.zeros(8, dtype=torch.long).numpy())
    with pytest.raises(BadDataError, match="base model takes 4 features; the dataset has 5"):
        fine_tune_torch(recipe, fine_tune, checkpoint, wider, wider)
    with pytest.raises(BaseModelError, match="cannot fetch base model"):
        fetch_checkpoint(f"file://{tmp_path}", None)
    with pytest.raises(BaseModelError, match="cannot load the base checkpoint"):
        load_checkpoint(b"not a checkpoint")


def test_checkpoint_found_by_path_and_folder(tmp_path: Path) -> None:
    checkpoint = base_checkpoint()
    (tmp_path / "checkpoint.pt").write_bytes(checkpoint)
    assert fetch_checkpoint(f"file://{tmp_path}", None) == checkpoint
    assert fetch_checkpoint(str(tmp_path / "checkpoint.pt"), None) == checkpoint


@pytest.mark.mlflow
def test_fine_tune_from_registered_model(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    base_data = write_parquet(blobs(n_rows=150, n_classes=3, seed=1), tmp_path / "base.parquet")
    code, base = pod.train(
        base_data,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 3, "hiddenUnits": [16, 8]},
        register={"modelName": "base-net", "alias": "base"},
    )
    assert code == 0, base.message
    new_data = write_parquet(blobs(n_rows=150, n_classes=2, seed=4), tmp_path / "new.parquet")
    code, tuned = pod.train(
        new_data,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        fineTune={
            "baseModelUri": "models:/base-net@base",
            "headEpochs": 2,
            "headLearningRate": 0.05,
            "schedule": [{"epochs": 2, "unfreezeLayers": 1, "learningRate": 0.01}],
        },
        register={"modelName": "tuned-net", "alias": "tuned"},
    )
    assert code == 0, tuned.message

    def weights(model_uri: str) -> State:
        folder = Path(
            download_artifacts(
                resolve_registered_model(model_uri, pod.tracking_uri).location,
                dst_path=str(tmp_path / model_uri.split("/")[1]),
                tracking_uri=pod.tracking_uri,
            )
        )
        state = torch.load(io.BytesIO(next(folder.rglob("checkpoint.pt")).read_bytes()), weights_only=True)
        return dict(state["state_dict"])

    before, after = weights("models:/base-net@base"), weights("models:/tuned-net@tuned")
    assert before["head.weight"].shape == (3, 8) and after["head.weight"].shape == (2, 8)
    assert not block_changed(before, after, 0)
    assert block_changed(before, after, 1)
    params = mlflow_client.get_run(tuned.mlflow_run_id or "").data.params
    assert params["fine_tune.base_model_uri"] == "models:/base-net@base"
    assert params["model.epochs_run"] == "4"
