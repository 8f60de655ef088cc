"""Resolve MLflow registry URIs (`models:/name@alias`, `models:/name/3`) to a concrete version."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

from kubeloop.api.deployment import ResolvedModel

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$")


class RegistryError(Exception):
    """The registry could not be asked, or does not know the model."""


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """(name, version, alias) of a registry URI, or None for any other scheme."""
    match = REGISTRY_URI.match(uri)
    if match is None:
        return None
    return match["name"], match["version"], match["alias"]


def pinned_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


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
    parsed = parse_registry_uri(uri)
    if parsed is None:
        return None
    name, version, alias = parsed
    if version is None:
        version = alias_version(tracking_uri, name, alias or "")
    return ResolvedModel(uri=pinned_uri(name, version), version=version)
