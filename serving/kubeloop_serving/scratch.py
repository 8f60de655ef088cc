"""The directory a model is downloaded to, and the removal of those whose server died.

A download lives in ``$TMPDIR/kubeloop-model-*`` while its server runs, and a clean stop removes it.
A server killed outright cannot: an OOM kill is SIGKILL. In a pod ``/tmp`` is an emptyDir, which
outlives the container, so each restart would leave one more copy of the model on the node's disk.
So each server holds an exclusive ``flock`` on its directory's lock file for as long as it lives
(the kernel releases it however the process ends). Before making its own directory, a server
removes every directory whose lock it can take. Sweeping, making a directory and removing one each
hold a lock on the temporary directory itself, so no sweep sees a directory made but not yet locked,
or one half removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)
PREFIX: Final = "kubeloop-model-"
LOCK_FILE: Final = ".owner.lock"


class Scratch:
    """A directory of this process's, locked until :meth:`remove` or the process's end."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    def remove(self) -> None:
        """Delete the directory, then let go of its lock (idempotent). A sweep waits for the removal,
        so it never takes a half-removed directory (its lock file gone) for an abandoned one."""
        if self._lock_fd < 0:
            return
        with _holding(self.path.parent):
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = -1


def claim() -> Scratch:
    """A new locked directory under the temporary directory, after removing those nobody holds."""
    root = Path(tempfile.gettempdir())
    with _holding(root):
        for directory in root.glob(PREFIX + "*"):
            if directory.is_dir() and not directory.is_symlink() and _abandoned(directory):
                log.warning("removing %s: its server stopped without removing it", directory)
                shutil.rmtree(directory, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=PREFIX))
        try:
            lock_fd = os.open(path / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a file only this process has opened: never waits
    return Scratch(path, lock_fd)


def _abandoned(directory: Path) -> bool:
    """Whether no live process holds the directory's lock (or it has none: its maker died first)."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:  # not ours to judge (another user's, say)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def _holding(directory: Path) -> Iterator[None]:
    """An exclusive flock on ``directory`` itself for the block."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
