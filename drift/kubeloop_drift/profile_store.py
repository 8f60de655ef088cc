"""Profiles on disk or object storage: one uncompressed .npz (arrays + a JSON header).

By default a profile lives beside its reference, ``<reference>.kubeloop-profile.npz`` (a sibling
of the file or folder, never inside a dataset folder); ``--profile-cache`` names either the
profile file itself (``...npz``) or a folder where it is keyed by the reference URI. A profile
is reused only while the reference's fingerprint (every file's path, size and mtime/ETag) and
the profiling settings are unchanged; otherwise it is rebuilt and rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fsspec.implementations.local import LocalFileSystem

from kubeloop_drift.errors import UnreadableInputError
from kubeloop_drift.profile import (
    PROFILE_FORMAT,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ProfileSettings,
    ReferenceProfile,
)
from kubeloop_drift.sources import filesystem_for, one_line

PROFILE_SUFFIX = ".kubeloop-profile.npz"
NUMERIC_ARRAYS = ("sorted_values", "bin_edges", "bin_counts", "plot_edges", "plot_counts")


def profile_uri_for(reference_uri: str, cache_uri: str | None = None) -> str:
    """Where the profile of ``reference_uri`` is kept."""
    reference = reference_uri.rstrip("/")
    if cache_uri is None:
        return reference + PROFILE_SUFFIX
    if cache_uri.endswith(".npz"):
        return cache_uri
    key = hashlib.sha256(reference.encode()).hexdigest()[:16]
    return f"{cache_uri.rstrip('/')}/{reference.rsplit('/', 1)[-1]}-{key}{PROFILE_SUFFIX}"


def encode_profile(profile: ReferenceProfile) -> bytes:
    """The profile as .npz bytes."""
    arrays: dict[str, Any] = {}
    columns: list[dict[str, Any]] = []
    for index, column in enumerate(profile.columns.values()):
        if isinstance(column, NumericProfile):
            header = _scalar_fields(column, excluded=NUMERIC_ARRAYS)
            arrays.update({f"{index}.{name}": getattr(column, name) for name in NUMERIC_ARRAYS})
        else:
            header = _scalar_fields(column, excluded=("category_counts",))
            arrays[f"{index}.category_counts"] = column.category_counts
        columns.append(header)
    header = {
        "format": PROFILE_FORMAT,
        "reference_uri": profile.reference_uri,
        "fingerprint": profile.fingerprint,
        "rows": profile.rows,
        "settings": asdict(profile.settings),
        "unsupported": profile.unsupported,
        "created": profile.created,
        "columns": columns,
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_profile(data: bytes) -> ReferenceProfile:
    """A profile from .npz bytes; ValueError when it is not one (or of another format)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(f"not a kubeloop profile: {one_line(error)}") from error
    if header.get("format") != PROFILE_FORMAT:
        raise ValueError(f"profile format {header.get('format')!r}, expected {PROFILE_FORMAT}")
    columns: dict[str, ColumnProfile] = {}
    for index, stored_fields in enumerate(header["columns"]):
        column: ColumnProfile
        if stored_fields["kind"] == "numeric":
            column = NumericProfile(
                **stored_fields, **{name: arrays[f"{index}.{name}"] for name in NUMERIC_ARRAYS}
            )
        else:
            column = CategoricalProfile(**stored_fields, category_counts=arrays[f"{index}.category_counts"])
        columns[column.name] = column
    return ReferenceProfile(
        reference_uri=header["reference_uri"],
        fingerprint=header["fingerprint"],
        rows=header["rows"],
        settings=ProfileSettings(**header["settings"]),
        columns=columns,
        unsupported=header["unsupported"],
        created=header["created"],
    )


def save_profile(profile: ReferenceProfile, uri: str) -> None:
    """Write the profile (atomically on a local disk). Raises OSError when it cannot."""
    if not profile.created:
        profile.created = datetime.now(UTC).isoformat(timespec="seconds")
    data = encode_profile(profile)
    filesystem, path = filesystem_for(uri)
    if _is_local(filesystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".profile-", delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, target)
        return
    with filesystem.open(path, "wb") as handle:
        handle.write(data)


def load_profile(uri: str) -> ReferenceProfile | None:
    """The stored profile, or None when there is none. Unreadable or foreign files raise ValueError."""
    try:
        filesystem, path = filesystem_for(uri)
        with filesystem.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnreadableInputError) as error:
        raise ValueError(f"cannot read profile {uri}: {one_line(error)}") from error
    return decode_profile(data)


def _scalar_fields(column: ColumnProfile, excluded: tuple[str, ...]) -> dict[str, Any]:
    return {f.name: getattr(column, f.name) for f in fields(column) if f.name not in excluded}


def _is_local(filesystem: Any) -> bool:
    return isinstance(filesystem, LocalFileSystem)
