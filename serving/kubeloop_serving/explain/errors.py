"""Errors of the explanation endpoint, under the server's one error root."""

from __future__ import annotations

from kubeloop_serving.errors import ServingError


class ExplanationsDisabledError(ServingError):
    """The server was started without KUBELOOP_SERVING_EXPLAIN_ENABLED."""

    status_code = 404


class ExplainerUnavailableError(ServingError):
    """Explanations are on but cannot be computed for this model (or its background data)."""

    status_code = 503
