"""Stopping on SIGTERM (activeDeadlineSeconds, eviction, deletion) with a summary, not a crash.

The handler only records the request; the trainer stops at its next checkpoint (between
epochs, trials and stages) by raising `TerminatedError`, so the run still ends as a summary
and a FAILED MLflow run. Raising from the handler itself is not safe: libraries catch and wrap
exceptions raised inside their calls (MLflow turns one into an MlflowException). Where no
checkpoint comes in time (a long scikit-learn fit), a watchdog writes the summary after
``grace_seconds`` and exits, before the kubelet's SIGKILL (30 s after SIGTERM by default).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from kubeloop_trainer.errors import TerminatedError

DEFAULT_GRACE_SECONDS = 20.0
GRACE_ENV = "KUBELOOP_TRAINER_STOP_GRACE_SECONDS"

_requested = threading.Event()
_reason: list[str] = []


def stop_requested() -> bool:
    return _requested.is_set()


def raise_if_stopped() -> None:
    """A checkpoint: raise `TerminatedError` once a stop was requested."""
    if _requested.is_set():
        raise TerminatedError(_reason[0] if _reason else "stop requested")


def request_stop(reason: str) -> None:
    if not _requested.is_set():
        _reason.append(reason)
        _requested.set()


def reset() -> None:
    """Forget a stop request (for a new run in the same process, e.g. tests)."""
    _requested.clear()
    _reason.clear()


def grace_seconds() -> float:
    try:
        return float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_SECONDS))
    except ValueError:
        return DEFAULT_GRACE_SECONDS


@contextmanager
def handling_sigterm(on_forced_exit: Callable[[str], object]) -> Iterator[None]:
    """Within the block, SIGTERM requests a stop, and forces an exit (after ``on_forced_exit``)
    if the trainer reaches no checkpoint within the grace period. Restores the previous
    handler, and calls off a pending forced exit, when the block ends."""
    reset()
    watchdogs: list[threading.Timer] = []

    def forced_exit() -> None:
        on_forced_exit(_reason[0] if _reason else "stopped")
        sys.stderr.flush()
        os._exit(1)

    def handle(signum: int, frame: FrameType | None) -> None:
        request_stop(f"stopped by signal {signal.Signals(signum).name} (deadline, eviction or deletion)")
        if not watchdogs:
            watchdogs.append(threading.Timer(grace_seconds(), forced_exit))
            watchdogs[0].daemon = True
            watchdogs[0].start()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        for watchdog in watchdogs:
            watchdog.cancel()
