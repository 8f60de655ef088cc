"""Fine-tuning: start from a base network, give it a new head, train the head, unfreeze gradually.

The base is a checkpoint this trainer saved (``model/checkpoint.pt`` next to ``model.onnx``),
found by an MLflow model URI (``models:/name@alias``, ``models:/name/3``, ``runs:/id/model``)
or by a path/URI (file://, s3://, https://, /path) of the file or of the folder holding it.
Phases: ``headEpochs`` at ``headLearningRate`` with every block frozen; then each schedule
step unfreezes ``unfreezeLayers`` more blocks from the top and trains at its learning rate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import fsspec
import mlflow.artifacts
import torch

from kubeloop.api.training import FineTune
from kubeloop.mlflow_client import load_header_providers
from kubeloop.registry import resolve_registered_model
from kubeloop_trainer.errors import BadDataError, BaseModelError
from kubeloop_trainer.hyperparameters import network_hyperparameters
from kubeloop_trainer.model import EpochCallback, EpochCheckpoints, Recipe
from kubeloop_trainer.splits import Part
from kubeloop_trainer.topology import SINGLE_WORKER, Topology
from kubeloop_trainer.torch_fit import Phase, fit_network
from kubeloop_trainer.torch_models import TorchModel, load_checkpoint, loop_settings, n_features_of
from kubeloop_trainer.tracking import CHECKPOINT_FILE

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def fine_tune_phases(fine_tune: FineTune) -> list[Phase]:
    """The head phase, then one phase per schedule step with cumulatively more unfrozen blocks."""
    phases = [Phase(fine_tune.head_epochs, fine_tune.head_learning_rate, trainable_blocks=0)]
    unfrozen = 0
    for step in fine_tune.schedule:
        unfrozen += step.unfreeze_layers
        phases.append(Phase(step.epochs, step.learning_rate, trainable_blocks=unfrozen))
    return [phase for phase in phases if phase.epochs > 0]


def _checkpoint_in(folder: Path, uri: str) -> bytes:
    found = sorted(folder.rglob(CHECKPOINT_FILE))
    if not found:
        raise BaseModelError(
            f"{uri} holds no {CHECKPOINT_FILE}: only PyTorch models trained by kubeloop fine-tune"
        )
    return found[0].read_bytes()


def fetch_checkpoint(uri: str, tracking_uri: str | None) -> bytes:
    """The bytes of the base checkpoint at ``uri``."""
    try:
        if uri.startswith(MLFLOW_SCHEMES):
            load_header_providers()
            location = (
                resolve_registered_model(uri, tracking_uri).location if uri.startswith("models:/") else uri
            )
            with tempfile.TemporaryDirectory(prefix="kubeloop-base-") as scratch:
                local = mlflow.artifacts.download_artifacts(
                    location, dst_path=scratch, tracking_uri=tracking_uri
                )
                return _checkpoint_in(Path(local), uri)
        fs, path = fsspec.core.url_to_fs(uri.removeprefix("file://"))
        return bytes(fs.cat_file(f"{path.rstrip('/')}/{CHECKPOINT_FILE}" if fs.isdir(path) else path))
    except BaseModelError:
        raise
    except Exception as error:  # missing model, network, permissions: the base is unusable either way
        raise BaseModelError(f"cannot fetch base model {uri}: {type(error).__name__}: {error}") from error


def fine_tune_torch(
    recipe: Recipe,
    fine_tune: FineTune,
    checkpoint: bytes,
    train: Part,
    validation: Part,
    *,
    topology: Topology = SINGLE_WORKER,
    on_epoch: EpochCallback | None = None,
    checkpoints: EpochCheckpoints | None = None,
) -> TorchModel:
    network, base_hp, algorithm, base_task = load_checkpoint(checkpoint)
    if base_task != recipe.task:
        raise BaseModelError(f"the base model does {base_task}; this run does {recipe.task}")
    if n_features_of(network) != recipe.n_features:
        raise BadDataError(
            f"the base model takes {n_features_of(network)} features; the dataset has {recipe.n_features}"
        )
    hp = network_hyperparameters({**base_hp.model_dump(), **recipe.hyperparameters})
    torch.manual_seed(recipe.seed)
    network.replace_head(recipe.n_outputs)
    if recipe.task == "regression":
        network.standardize_outputs(torch.as_tensor(train.y, dtype=torch.float32))
    settings = loop_settings(recipe, hp, train)
    phases = fine_tune_phases(fine_tune)
    history = fit_network(
        network,
        train,
        validation,
        phases,
        settings,
        topology=topology,
        on_epoch=on_epoch,
        checkpoints=checkpoints,
    )
    return TorchModel(network, algorithm, recipe.task, hp, history)
