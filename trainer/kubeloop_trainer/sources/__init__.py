"""spec.dataset -> the data, read at an immutable reference that the run records.

A plain ``uri`` is read as it is (its reference is its sha256). A versioned source is resolved
first (DVC: the git commit of ``rev``; lakeFS: the commit id ``ref`` points at; Feast: the
registry's state and the entity file) and then read at what it resolved to. The DVC, lakeFS and
Feast packages (the ``data`` extra) are heavy: each is imported only when a dataset asks for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from kubeloop.api.data_sources import DataKind, DataReference
from kubeloop.api.training import Dataset
from kubeloop_trainer.dataset import LoadedDataset, load_dataset
from kubeloop_trainer.errors import BadDataError, InvalidSpecError


@dataclass(frozen=True)
class Source:
    """The data read, and the immutable reference it was read at."""

    loaded: LoadedDataset
    reference: DataReference

    @classmethod
    def of_files(
        cls,
        loaded: LoadedDataset,
        kind: DataKind,
        requested: str,
        revision: str | None = None,
        details: dict[str, str] | None = None,
    ) -> Source:
        """Files read as they are: the reference carries their fingerprint (sha256, rows)."""
        fingerprint = loaded.fingerprint
        reference = DataReference(
            kind=kind,
            requested=requested,
            revision=revision,
            sha256=fingerprint.sha256,
            rows=fingerprint.rows,
            details=details or {},
        )
        return cls(loaded, reference)


@contextlib.contextmanager
def environment_restored() -> Iterator[None]:
    """The process environment as it was on entry, whatever the block set in it. Feast's import sets
    PROMETHEUS_MULTIPROC_DIR (for its own feature server's workers): every process started from
    here on (trial workers, a test's servers) would keep its Prometheus metrics in files there."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)


def require(module: str, kind: str) -> ModuleType:
    """``module`` of the ``data`` extra, or an InvalidSpec naming what to install."""
    try:
        with environment_restored():
            return importlib.import_module(module)
    except ImportError as error:
        raise InvalidSpecError(
            f"dataset.{kind} needs the data extra (pip install 'kubeloop[data]'): {error}"
        ) from error


def check_pin(expected: str | None, reference: DataReference) -> None:
    """A pinned dataset (``dataset.sha256``) must be exactly the data read."""
    if expected is not None and expected != reference.sha256:
        raise BadDataError(
            f"dataset {reference.requested} has sha256 {reference.sha256}, not the pinned {expected}"
        )


def load_source(dataset: Dataset) -> Source:
    """Resolve and read ``dataset``; a source that cannot be resolved or read is BadData."""
    if dataset.dvc is not None:
        require("dvc.api", "dvc")
        from kubeloop_trainer.sources.dvc import load_dvc

        source = load_dvc(dataset.dvc, dataset.format)
    elif dataset.lakefs is not None:
        require("lakefs_spec", "lakefs")
        from kubeloop_trainer.sources.lakefs import load_lakefs

        source = load_lakefs(dataset.lakefs, dataset.format)
    elif dataset.feast is not None:
        require("feast", "feast")
        from kubeloop_trainer.sources.feast import load_feast

        source = load_feast(dataset.feast, dataset.format)
    else:
        assert dataset.uri is not None  # exactly one source: the API checks it
        source = Source.of_files(load_dataset(dataset.uri, dataset.format), "uri", dataset.uri)
    check_pin(dataset.sha256, source.reference)
    return source
