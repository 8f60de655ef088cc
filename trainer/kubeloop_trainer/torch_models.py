"""PyTorch algorithms (mlp, cnn): fit, predict, export to ONNX, checkpoint and reload."""

from __future__ import annotations

import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import onnx
import torch

from kubeloop_trainer.errors import BaseModelError
from kubeloop_trainer.features import FloatMatrix, Task
from kubeloop_trainer.hyperparameters import NetworkHyperparameters, network_hyperparameters
from kubeloop_trainer.model import EpochCallback, EpochCheckpoints, Recipe
from kubeloop_trainer.networks import ClassifierExport, LayeredNetwork, architecture, build_network
from kubeloop_trainer.splits import Part
from kubeloop_trainer.topology import SINGLE_WORKER, Topology
from kubeloop_trainer.torch_fit import (
    FitHistory,
    LoopSettings,
    Phase,
    balanced_class_weights,
    fit_network,
    outputs_as_numpy,
)

ONNX_OPSET = 17
CHECKPOINT_FORMAT = "kubeloop.torch/v1"


@dataclass
class TorchModel:
    network: LayeredNetwork
    algorithm: str
    task: Task
    hyperparameters: NetworkHyperparameters
    history: FitHistory

    @property
    def framework(self) -> str:
        return "pytorch"

    @torch.no_grad()
    def predict_output(self, x: FloatMatrix) -> npt.NDArray[Any]:
        self.network.eval()
        parameter = next(self.network.parameters())
        logits = self.network(torch.as_tensor(x, device=parameter.device))
        return outputs_as_numpy(logits, self.task)

    def to_onnx(self) -> Any:
        """Export with the TorchScript-based exporter (no onnxscript needed); batch axis dynamic."""
        network = self.network.to("cpu").eval()
        classifier = self.task == "classification"
        module = ClassifierExport(network) if classifier else network
        outputs = ["label", "probabilities"] if classifier else ["variable"]
        sample = torch.zeros(2, n_features_of(network))
        with tempfile.TemporaryDirectory(prefix="kubeloop-onnx-") as scratch, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(scratch) / "model.onnx"
            torch.onnx.export(
                module,
                (sample,),
                path,
                dynamo=False,
                input_names=["input"],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in ["input", *outputs]},
                opset_version=ONNX_OPSET,
            )
            return onnx.load_from_string(path.read_bytes())

    def effective_params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.hyperparameters.model_dump(mode="json")
        params.update(epochs_run=self.history.epochs_run, best_epoch=self.history.best_epoch)
        return {name: ",".join(map(str, v)) if isinstance(v, list) else v for name, v in params.items()}

    def checkpoint(self) -> bytes:
        n_outputs = self.network.head.out_features
        state = {
            "format": CHECKPOINT_FORMAT,
            "task": self.task,
            "architecture": architecture(
                self.algorithm, n_features_of(self.network), n_outputs, self.hyperparameters
            ),
            "state_dict": {name: tensor.cpu() for name, tensor in self.network.state_dict().items()},
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()


def n_features_of(network: LayeredNetwork) -> int:
    return int(network.input_shift.shape[0])


def loop_settings(recipe: Recipe, hp: NetworkHyperparameters, train: Part) -> LoopSettings:
    weights = (
        balanced_class_weights(train.y, recipe.n_classes)
        if recipe.class_balancing and recipe.task == "classification"
        else None
    )
    return LoopSettings(
        task=recipe.task,
        batch_size=hp.batch_size,
        weight_decay=hp.weight_decay,
        patience=recipe.early_stopping_patience,
        monitor=hp.early_stopping_metric,
        seed=recipe.seed,
        class_weights=weights,
    )


def new_network(recipe: Recipe, hp: NetworkHyperparameters, train: Part) -> LayeredNetwork:
    """A freshly initialised network (seeded: identical on every rank), standardised on ``train``."""
    torch.manual_seed(recipe.seed)
    network = build_network(recipe.algorithm, recipe.n_features, recipe.n_outputs, hp)
    network.standardize_inputs(torch.as_tensor(train.x))
    if recipe.task == "regression":
        network.standardize_outputs(torch.as_tensor(train.y, dtype=torch.float32))
    return network


def fit_torch(
    recipe: Recipe,
    train: Part,
    validation: Part,
    *,
    topology: Topology = SINGLE_WORKER,
    on_epoch: EpochCallback | None = None,
    checkpoints: EpochCheckpoints | None = None,
) -> TorchModel:
    hp = network_hyperparameters(recipe.hyperparameters)
    network = new_network(recipe, hp, train)
    phases = [Phase(epochs=hp.epochs, learning_rate=hp.learning_rate)]
    settings = loop_settings(recipe, hp, train)
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
    return TorchModel(network, recipe.algorithm, recipe.task, hp, history)


def load_checkpoint(data: bytes) -> tuple[LayeredNetwork, NetworkHyperparameters, str, Task]:
    """The network saved by `TorchModel.checkpoint`, its hyperparameters, algorithm and task."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise BaseModelError(f"not a kubeloop checkpoint (format {state.get('format')!r})")
        arch = state["architecture"]
        hp = NetworkHyperparameters.model_validate(arch["hyperparameters"])
        network = build_network(arch["algorithm"], arch["n_features"], arch["n_outputs"], hp)
        network.load_state_dict(state["state_dict"])
    except BaseModelError:
        raise
    except Exception as error:  # a torn or foreign file: say so, whatever torch raised
        raise BaseModelError(f"cannot load the base checkpoint: {type(error).__name__}: {error}") from error
    return network, hp, str(arch["algorithm"]), state["task"]
