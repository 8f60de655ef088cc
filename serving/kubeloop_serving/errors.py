"""One error root carrying its HTTP status; the app maps every subclass with one handler."""

from __future__ import annotations


class ServingError(Exception):
    """Root of every error the server reports to a client as ``{"error": "..."}``."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ServingError):
    """The request is malformed or does not match the model's inputs."""

    status_code = 400


class RequestTimeoutError(ServingError):
    """The request body did not arrive within BODY_TIMEOUT_SECONDS."""

    status_code = 408


class PayloadTooLargeError(ServingError):
    """The decoded inputs would take more memory than the per-request bound allows."""

    status_code = 413


class ModelNotFoundError(ServingError):
    """No model of that name (or version) is served here."""

    status_code = 404


class ModelNotReadyError(ServingError):
    """The model is known but still loading, or the server is shutting down."""

    status_code = 503


class InferenceFailedError(ServingError):
    """onnxruntime failed on input that passed validation, for a reason not caused by the input."""

    status_code = 500


class FeedbackDisabledError(ServingError):
    """Feedback was posted to a server without a label sink (LABELS_URI unset)."""

    status_code = 404


class LabelSinkError(ServingError):
    """The label sink could not be written; the client should retry."""

    status_code = 503


class ModelLoadError(Exception):
    """The model could not be fetched, verified or loaded; the server refuses to become ready."""
