"""A path at a lakeFS ref: the commit id the ref points at now, then the data at that commit.

Reads go to ``lakefs://<repository>/<commit id>/<path>``, never to the moving ref, so a commit
landing on the branch meanwhile changes nothing. Credentials come from the environment the
operator fills from ``lakefs.secretRef`` (lakectl's variable names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import lakefs
from lakefs_spec import LakeFSFileSystem

from kubeloop.api.data_sources import (
    LAKEFS_ACCESS_KEY_ID_ENV,
    LAKEFS_SECRET_ACCESS_KEY_ENV,
    LakeFsSource,
)
from kubeloop.contracts.datasets import DataFormat
from kubeloop_trainer.dataset import read_dataset
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.sources import Source


def requested(source: LakeFsSource) -> str:
    return f"lakefs://{source.repository}/{source.ref}/{source.path.lstrip('/')}"


def file_system(source: LakeFsSource, env: Mapping[str, str]) -> LakeFSFileSystem:
    key, secret = env.get(LAKEFS_ACCESS_KEY_ID_ENV), env.get(LAKEFS_SECRET_ACCESS_KEY_ENV)
    if not key or not secret:
        raise BadDataError(
            f"no lakeFS credentials: {LAKEFS_ACCESS_KEY_ID_ENV} and {LAKEFS_SECRET_ACCESS_KEY_ENV} are unset "
            f"(the operator sets them from Secret {source.secret_ref.name})"
        )
    # pre_sign off: objects come through the lakeFS API, so the pod needs no route to the blob store
    return LakeFSFileSystem(host=source.endpoint, username=key, password=secret, pre_sign=False)


def resolve(fs: LakeFSFileSystem, source: LakeFsSource) -> str:
    """The commit id ``source.ref`` (a branch, tag or commit) points at."""
    try:
        return str(lakefs.Reference(source.repository, source.ref, client=fs.client).get_commit().id)
    except Exception as error:  # lakefs.exceptions: not found, not authorized, server errors
        raise BadDataError(f"cannot resolve {requested(source)}: {type(error).__name__}: {error}") from error


def load_lakefs(
    source: LakeFsSource, declared: DataFormat | None, env: Mapping[str, str] | None = None
) -> Source:
    fs = file_system(source, os.environ if env is None else env)
    commit = resolve(fs, source)
    pinned = f"lakefs://{source.repository}/{commit}/{source.path.lstrip('/')}"
    loaded = read_dataset(fs, pinned, pinned, declared)
    details = {"files": str(loaded.fingerprint.files), "endpoint": source.endpoint}
    return Source.of_files(loaded, "lakefs", requested(source), commit, details)
