"""MLflow registry URIs (``models:/name/3``, ``models:/name@alias``, ``models:/name/latest``) resolved
to a version and a plain artifact location, with an explicit client.

mlflow's own ``download_artifacts("models:/...", tracking_uri=...)`` looks the model up in the
process-wide registry, whatever tracking URI it is given; resolving here first keeps a caller's
``tracking_uri`` the only one that counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


@dataclass(frozen=True)
class RegistryReference:
    """``models:/name/version`` or ``models:/name@alias``."""

    name: str
    version: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class RegisteredModelVersion:
    """The version a registry URI means now and where its artifacts are."""

    name: str
    version: str
    location: str


def parse_registry_uri(uri: str) -> RegistryReference:
    """Split an MLflow registry URI; ValueError when it is not one."""
    match = _REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not models:/name/version or models:/name@alias")
    return RegistryReference(match["name"], match["version"], match["alias"])


def resolve_registered_model(uri: str, tracking_uri: str | None) -> RegisteredModelVersion:
    """Ask the registry at ``tracking_uri`` (None: ``MLFLOW_TRACKING_URI``) what ``uri`` means.

    Raises ImportError without mlflow, ValueError for a URI that is not a registry URI, and
    mlflow's exceptions for unknown models, versions and aliases.
    """
    from mlflow import MlflowClient

    reference = parse_registry_uri(uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = reference.version
    if reference.alias is not None:
        version = str(client.get_model_version_by_alias(reference.name, reference.alias).version)
    elif version == "latest":
        versions = client.search_model_versions(f"name='{reference.name}'")
        if not versions:
            raise ValueError(f"registered model {reference.name!r} has no versions")
        version = str(max(int(found.version) for found in versions))
    assert version is not None  # the pattern matches a version or an alias
    location = str(client.get_model_version_download_uri(reference.name, version))
    return RegisteredModelVersion(reference.name, version, location)
