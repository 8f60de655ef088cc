"""The `kubeloop` command: one entry point, each subcommand loads only its own component."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("kubeloop_operator.cli", "run the operator (kopf) against the current kubeconfig"),
    "serve": ("kubeloop_serving.cli", "run the ONNX inference server (settings from KUBELOOP_SERVING_*)"),
    "drift": ("kubeloop_drift.cli", "drift checks: `drift check`, `drift profile`"),
    "train": ("kubeloop_trainer.cli", "run the built-in trainer"),
    "crds": ("kubeloop.crds_cli", "write the CustomResourceDefinitions as YAML"),
    "load": ("kubeloop.loadgen", "steady OIP load at a URL, counting every request (JSON summary)"),
    "reproduce": (
        "kubeloop.reproduce_cli",
        "a TrainingJob re-running another pinned to its status.provenance",
    ),
}


def usage() -> str:
    lines = ["usage: kubeloop <command> [args...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] not in SUBCOMMANDS:
        print(f"kubeloop: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[args[0]][0])
    entry: Callable[[list[str]], int] = module.main
    return entry(args[1:])


if __name__ == "__main__":
    sys.exit(main())
