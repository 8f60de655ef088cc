"""Registry URIs: what the schema admits, the operator pins, and the server and trainer resolve."""

from __future__ import annotations

import re

import pytest

from kubeloop.api.common import MODEL_URI_PATTERN
from kubeloop.contracts.registry_uri import RegistryReference, parse_registry_uri
from kubeloop_operator.registry import RegistryError, resolve
from kubeloop_serving.settings import model_name_from_uri

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "uri", ["models:/churn/3", "models:/churn@champion", "models:/my.model/12", "models:/churn@blue-2"]
)
def test_what_the_schema_admits_parses(uri: str) -> None:
    assert re.match(MODEL_URI_PATTERN, uri)
    assert parse_registry_uri(uri).name == uri.removeprefix("models:/").split("/")[0].split("@")[0]


@pytest.mark.parametrize("uri", ["models:/churn", "models:/churn/3/x", "models:/a@b@c", "models:/churn/v3"])
def test_what_the_schema_refuses_does_not_parse(uri: str) -> None:
    assert not re.match(MODEL_URI_PATTERN, uri)
    with pytest.raises(ValueError, match="is not"):
        parse_registry_uri(uri)


def test_the_pinned_uri_the_operator_serves_is_the_same_model_to_the_server() -> None:
    pinned = resolve("models:/churn/3", "http://unused")
    assert pinned is not None and pinned.version == "3"
    assert parse_registry_uri(pinned.uri) == RegistryReference("churn", version="3")
    assert model_name_from_uri(pinned.uri) == "churn"
    with pytest.raises(RegistryError):
        resolve("models:/churn/latest", "http://unused")  # the servers must agree on one version
    assert resolve("s3://bucket/model.onnx", "http://unused") is None
