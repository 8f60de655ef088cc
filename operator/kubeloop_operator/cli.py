"""`kubeloop operator`: run the kopf operator with kubeloop's handlers."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeloop operator", description="Reconcile kubeloop.io resources.")
    parser.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch only these (repeatable)"
    )
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    import kopf

    import kubeloop_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
    )
    return 0
