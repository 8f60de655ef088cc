"""One error root for the trainer: each failure carries the reason the TrainingJob status shows."""

from __future__ import annotations

from typing import ClassVar


class TrainerError(Exception):
    """A failure the trainer explains to its user; `reason` is a CamelCase word for the status."""

    reason: ClassVar[str] = "Error"


class BadDataError(TrainerError):
    """The dataset is missing, unreadable, or does not fit the spec (e.g. no target column)."""

    reason = "BadData"


class InvalidSpecError(TrainerError):
    """The spec asks for something the built-in trainer cannot do (e.g. sklearn with workers > 1)."""

    reason = "InvalidSpec"


class BaseModelError(TrainerError):
    """The base model of a fine-tuning run cannot be loaded or does not fit the new data."""

    reason = "BadBaseModel"


class ExportMismatchError(TrainerError):
    """The exported ONNX model does not reproduce the framework's outputs within tolerance."""

    reason = "ExportMismatch"


class TerminatedError(TrainerError):
    """The pod was asked to stop (SIGTERM: deadline, eviction or deletion) before the run ended."""

    reason = "Terminated"


class TrackingError(TrainerError):
    """The MLflow tracking server cannot be reached or refuses the run."""

    reason = "TrackingUnavailable"


class StudyStorageError(TrainerError):
    """The shared study's database cannot be used (unreachable, refused, or not PostgreSQL)."""

    reason = "StudyStorageUnavailable"
