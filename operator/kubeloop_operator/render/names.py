"""Child names that stay valid DNS labels however long the parent's name is."""

from __future__ import annotations

import hashlib

MAX_LABEL = 63


def child_name(parent: str, suffix: str = "", limit: int = MAX_LABEL) -> str:
    """`parent-suffix`, shortened with a stable hash when it would exceed `limit` characters."""
    name = f"{parent}-{suffix}" if suffix else parent
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = limit - len(digest) - 1 - (len(suffix) + 1 if suffix else 0)
    head = parent[:keep].rstrip("-")
    return f"{head}-{digest}-{suffix}" if suffix else f"{head}-{digest}"
