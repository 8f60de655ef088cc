"""MLflow registry URIs: ``models:/name/3``, ``models:/name@alias`` (and ``models:/name/latest``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "models:/"
_REGISTRY_URI = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+|latest)|@(?P<alias>[A-Za-z0-9_-]+))/?$"
)


@dataclass(frozen=True)
class RegistryReference:
    """A registered model and either a version (digits or ``latest``) or an alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def pinned(self) -> bool:
        """A fixed version number: what it means never changes."""
        return self.version is not None and self.version != "latest"


def is_registry_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


def parse_registry_uri(uri: str) -> RegistryReference:
    """Split a registry URI; ValueError when it is not one."""
    match = _REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not models:/name/version or models:/name@alias")
    return RegistryReference(match["name"], match["version"], match["alias"])


def pinned_uri(name: str, version: str) -> str:
    """The URI of one exact version."""
    return f"{SCHEME}{name}/{version}"
