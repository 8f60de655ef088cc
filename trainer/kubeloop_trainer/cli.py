"""``kubeloop train``: the built-in trainer's command line.

In a pod the operator passes the spec and identity through the environment (see
`kubeloop_trainer.context`); locally ``--spec FILE`` (JSON or YAML; a spec or a whole
TrainingJob manifest) does. The summary goes to the termination-message file for the
operator and, as one JSON line, to stdout. Exit status 0 on success, 1 on failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubeloop.api.summaries import (
    TERMINATION_MESSAGE_PATH,
    TrainingSummary,
    encode,
    write_termination_message,
)
from kubeloop_trainer import stopping
from kubeloop_trainer.context import context_from_env
from kubeloop_trainer.errors import TerminatedError, TrainerError
from kubeloop_trainer.runner import run
from kubeloop_trainer.topology import is_pod_leader
from kubeloop_trainer.trial_worker import run_trials


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="kubeloop train", description="Run the built-in trainer.")
    cli.add_argument("--spec", type=Path, help="TrainingJob spec file (default: $KUBELOOP_TRAINING_SPEC)")
    cli.add_argument("--output-dir", type=Path, help="also write model.onnx / checkpoint.pt here")
    cli.add_argument(
        "--termination-log",
        default=TERMINATION_MESSAGE_PATH,
        help=f"where the summary goes for the operator (default {TERMINATION_MESSAGE_PATH})",
    )
    return cli


def report(summary: TrainingSummary, termination_log: str) -> int:
    """Hand the summary to the operator (termination message) and to the log; the exit status.
    Of several processes in a pod only LOCAL_RANK 0 writes the pod's message (rank 0's is the run's)."""
    if is_pod_leader():
        write_termination_message(summary, termination_log)
    print(encode(summary), flush=True)
    if summary.failure_reason:
        print(f"training failed ({summary.failure_reason}): {summary.message}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def forced_exit(reason: str) -> None:
        forced = TrainingSummary(failure_reason=TerminatedError.reason, message=f"{reason}; forced exit")
        report(forced, args.termination_log)

    with stopping.handling_sigterm(forced_exit):
        try:
            context = context_from_env(args.spec, output_dir=args.output_dir)
        except TrainerError as error:
            summary = TrainingSummary(failure_reason=error.reason, message=str(error))
        else:
            worker = context.trial_worker
            summary = run(context) if worker is None else run_trials(context, worker)
        return report(summary, args.termination_log)
