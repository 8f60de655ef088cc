"""MLflow registry URIs (``models:/name/3``, ``models:/name@alias``, ``models:/name/latest``) resolved
to a version and a plain artifact location, with an explicit client.

mlflow's own ``download_artifacts("models:/...", tracking_uri=...)`` looks the model up in the
process-wide registry, whatever tracking URI it is given; resolving here first keeps a caller's
``tracking_uri`` the only one that counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeloop.contracts.registry_uri import RegistryReference, parse_registry_uri
from kubeloop.mlflow_client import connect

__all__ = ["RegisteredModelVersion", "RegistryReference", "parse_registry_uri", "resolve_registered_model"]


@dataclass(frozen=True)
class RegisteredModelVersion:
    """The version a registry URI means now and where its artifacts are."""

    name: str
    version: str
    location: str


def resolve_registered_model(uri: str, tracking_uri: str | None) -> RegisteredModelVersion:
    """Ask the registry at ``tracking_uri`` (None: ``MLFLOW_TRACKING_URI``) what ``uri`` means.

    Raises ImportError without mlflow, ValueError for a URI that is not a registry URI, and
    mlflow's exceptions for unknown models, versions and aliases.
    """
    reference = parse_registry_uri(uri)
    client = connect(tracking_uri)
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
