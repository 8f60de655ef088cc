"""Typed hyperparameters of the PyTorch models, and the estimator arguments of the sklearn ones.

For sklearn algorithms ``spec.hyperparameters`` are passed to the estimator's constructor (an
unknown name is refused). For ``mlp`` and ``cnn`` they are the fields of
`NetworkHyperparameters` below, in snake_case or camelCase; unknown names are refused too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from kubeloop_trainer.errors import InvalidSpecError


class NetworkHyperparameters(BaseModel):
    """Hyperparameters of the built-in PyTorch networks (``mlp`` and ``cnn``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    epochs: int = Field(20, ge=1, le=100_000, description="Most epochs; early stopping may end sooner.")
    batch_size: int = Field(64, ge=1, description="Rows per step on each worker.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam's L2 penalty.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each hidden block.")
    hidden_units: list[int] = Field(
        default_factory=lambda: [64, 32], description="MLP: width of each hidden layer."
    )
    conv_channels: list[int] = Field(
        default_factory=lambda: [8, 16], description="CNN: channels of each conv block."
    )
    dense_units: int = Field(32, ge=1, description="CNN: width of the dense layer before the head.")
    image_channels: int = Field(1, ge=1, description="CNN: channels of the input image.")
    image_height: int | None = Field(None, ge=1, description="CNN: default: a square image from the width.")
    image_width: int | None = Field(None, ge=1, description="CNN: default: a square image from the width.")
    early_stopping_metric: str = Field("val_loss", description="Validation metric watched by early stopping.")

    @field_validator("hidden_units", "conv_channels", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """Accept ``64`` for ``[64]`` and ``"64,32"`` (search spaces yield strings) for ``[64, 32]``."""
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(part) for part in value.replace("-", ",").split(",") if part.strip()]
        return value

    def image_shape(self, n_features: int) -> tuple[int, int, int]:
        """(channels, height, width) of the images encoded in ``n_features`` columns."""
        pixels, remainder = divmod(n_features, self.image_channels)
        height, width = image_sides(pixels, self.image_height, self.image_width)
        if remainder or height * width != pixels:
            raise InvalidSpecError(
                f"{n_features} feature columns are not {self.image_channels} channel(s) of "
                f"{height}x{width} pixels; set imageChannels/imageHeight/imageWidth"
            )
        return self.image_channels, height, width


def image_sides(pixels: int, height: int | None, width: int | None) -> tuple[int, int]:
    """Height and width of an image of ``pixels`` pixels: the given ones, else a square's."""
    if height is not None and width is not None:
        return height, width
    if height is not None:
        return height, pixels // height
    if width is not None:
        return pixels // width, width
    side = round(pixels**0.5)
    return side, side


def network_hyperparameters(values: dict[str, Any]) -> NetworkHyperparameters:
    try:
        return NetworkHyperparameters.model_validate(values)
    except ValidationError as error:
        raise InvalidSpecError(f"bad hyperparameters for the network: {error}") from error


def coerce_scalar(value: Any) -> Any:
    """A string from a categorical search space as the number or boolean it spells, else itself."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            continue
    return value
