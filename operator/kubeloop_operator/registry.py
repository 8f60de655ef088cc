"""Resolve MLflow registry URIs (`models:/name@alias`, `models:/name/3`) to a concrete version, over
MLflow's REST API (the operator does not depend on mlflow)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts.registry_uri import is_registry_uri, parse_registry_uri, pinned_uri


class RegistryError(Exception):
    """The registry could not be asked, or does not know the model."""


def alias_version(tracking_uri: str, name: str, alias: str, timeout: float = 5.0) -> str:
    """Ask the MLflow REST API which version an alias points at."""
    query = urllib.parse.urlencode({"name": name, "alias": alias})
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = json.load(response)
    except Exception as error:  # an unreachable registry and an unknown alias look alike to the user
        raise RegistryError(f"cannot resolve models:/{name}@{alias} at {tracking_uri}: {error}") from error
    return str(payload["model_version"]["version"])


def resolve(uri: str, tracking_uri: str) -> ResolvedModel | None:
    """The version a registry URI means now; None for URIs outside the registry."""
    if not is_registry_uri(uri):
        return None
    try:
        reference = parse_registry_uri(uri)
    except ValueError as error:
        raise RegistryError(str(error)) from error
    if reference.alias is not None:
        version = alias_version(tracking_uri, reference.name, reference.alias)
    elif reference.pinned and reference.version is not None:
        version = reference.version
    else:
        raise RegistryError(f"{uri}: a ModelDeployment needs a version number or an alias")
    return ResolvedModel(uri=pinned_uri(reference.name, version), version=version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str, timeout: float = 5.0) -> None:
    """Point `models:/name@alias` at `version` (MLflow's REST API; idempotent)."""
    body = json.dumps({"name": name, "alias": alias, "version": version}).encode()
    request = urllib.request.Request(
        f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except Exception as error:
        raise RegistryError(f"cannot move models:/{name}@{alias} to version {version}: {error}") from error


def movable_alias(stable_uri: str, canary: ResolvedModel) -> tuple[str, str, str] | None:
    """(name, alias, version) when promoting `canary` means moving the alias stable follows: stable is
    `models:/name@alias` and the canary a version of the same registered model."""
    if not is_registry_uri(stable_uri) or canary.version is None or not is_registry_uri(canary.uri):
        return None
    try:
        stable, promoted = parse_registry_uri(stable_uri), parse_registry_uri(canary.uri)
    except ValueError:
        return None
    if stable.alias is None or stable.name != promoted.name:
        return None
    return stable.name, stable.alias, canary.version
