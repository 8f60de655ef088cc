"""Progress lines on stderr (``kubectl logs`` shows them while a long run goes on)."""

from __future__ import annotations

import sys
import time

SHOWN_METRICS = ("train_loss", "val_loss", "val_accuracy", "val_f1", "val_rmse", "val_r2")


def format_metrics(metrics: dict[str, float], names: tuple[str, ...] | None = None) -> str:
    chosen = [name for name in (names or tuple(sorted(metrics))) if name in metrics]
    return " ".join(f"{name}={metrics[name]:.4g}" for name in chosen)


def epoch_line(epoch: int, total: int | None, metrics: dict[str, float], prefix: str = "") -> str:
    of_total = f"/{total}" if total else ""
    return f"{prefix}epoch {epoch}{of_total} {format_metrics(metrics, SHOWN_METRICS)}"


def trial_line(number: int, total: int, state: str, value: float | None, params: dict[str, object]) -> str:
    shown = "" if value is None else f" value={value:.4g}"
    return f"trial {number + 1}/{total} {state}{shown} params={params}"


class Progress:
    """Prints timestamped lines to stderr, or nothing when disabled (non-chief workers)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def say(self, line: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.started
            print(f"[kubeloop-trainer {elapsed:7.1f}s] {line}", file=sys.stderr, flush=True)
