"""The built-in PyTorch networks: a stack of blocks (the layers fine-tuning freezes) and a head.

Both take the flat float32 feature matrix the ONNX model takes, so every model has one input
of shape [batch, n_features]; the CNN reshapes it to [batch, channels, height, width] first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kubeloop_trainer.hyperparameters import NetworkHyperparameters


class LayeredNetwork(nn.Module):
    """Standardise the inputs, run ``blocks`` in order, then ``head``, then undo the target's
    standardisation (regression). ``image_shape`` (c, h, w) makes it read images.

    The standardisation statistics are buffers: saved in checkpoints and exported to ONNX, so
    the served model takes raw features like the training data's.
    """

    input_shift: torch.Tensor
    input_scale: torch.Tensor
    output_shift: torch.Tensor
    output_scale: torch.Tensor

    def __init__(
        self,
        blocks: list[nn.Module],
        head: nn.Linear,
        n_features: int,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.image_shape = image_shape
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))
        self.register_buffer("output_shift", torch.zeros(1))
        self.register_buffer("output_scale", torch.ones(1))

    def standardize_inputs(self, x: torch.Tensor) -> None:
        """Learn the inputs' shift and scale from training rows ``x``."""
        std = x.std(dim=0) if x.shape[0] > 1 else torch.ones(x.shape[1])
        self.input_shift.copy_(x.mean(dim=0))
        self.input_scale.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))

    def standardize_outputs(self, y: torch.Tensor) -> None:
        """Learn a regression target's shift and scale from training targets ``y``."""
        std = float(y.std()) if y.shape[0] > 1 else 1.0
        self.output_shift.fill_(float(y.mean()))
        self.output_scale.fill_(std if std > 1e-12 else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_shift) / self.input_scale
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        for block in self.blocks:
            x = block(x)
        out: torch.Tensor = self.head(x)
        return out * self.output_scale + self.output_shift

    def replace_head(self, n_outputs: int) -> None:
        """A new, freshly initialised output layer for ``n_outputs`` outputs."""
        self.head = nn.Linear(self.head.in_features, n_outputs)


def mlp_blocks(n_features: int, hp: NetworkHyperparameters) -> tuple[list[nn.Module], int]:
    blocks: list[nn.Module] = []
    width = n_features
    for units in hp.hidden_units:
        blocks.append(nn.Sequential(nn.Linear(width, units), nn.ReLU(), nn.Dropout(hp.dropout)))
        width = units
    return blocks, width


def cnn_blocks(image_shape: tuple[int, int, int], hp: NetworkHyperparameters) -> tuple[list[nn.Module], int]:
    channels, height, width = image_shape
    blocks: list[nn.Module] = []
    for out_channels in hp.conv_channels:
        blocks.append(
            nn.Sequential(
                nn.Conv2d(channels, out_channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)
            )
        )
        channels, height, width = out_channels, -(-height // 2), -(-width // 2)
    flat = channels * height * width
    blocks.append(
        nn.Sequential(nn.Flatten(), nn.Linear(flat, hp.dense_units), nn.ReLU(), nn.Dropout(hp.dropout))
    )
    return blocks, hp.dense_units


def build_network(
    algorithm: str, n_features: int, n_outputs: int, hp: NetworkHyperparameters
) -> LayeredNetwork:
    if algorithm == "cnn":
        image_shape = hp.image_shape(n_features)
        blocks, width = cnn_blocks(image_shape, hp)
        return LayeredNetwork(blocks, nn.Linear(width, n_outputs), n_features, image_shape)
    blocks, width = mlp_blocks(n_features, hp)
    return LayeredNetwork(blocks, nn.Linear(width, n_outputs), n_features)


class ClassifierExport(nn.Module):
    """What the ONNX file computes for a classifier: ``label`` (argmax) and ``probabilities``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = torch.softmax(self.network(x), dim=1)
        return probabilities.argmax(dim=1), probabilities


def architecture(
    algorithm: str, n_features: int, n_outputs: int, hp: NetworkHyperparameters
) -> dict[str, Any]:
    """What a checkpoint records to rebuild the network."""
    return {
        "algorithm": algorithm,
        "n_features": n_features,
        "n_outputs": n_outputs,
        "hyperparameters": hp.model_dump(mode="json"),
    }
