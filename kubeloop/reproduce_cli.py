"""`kubeloop reproduce FILE`: the TrainingJob that re-runs FILE's (``kubectl get tj NAME -o yaml``) pinned
to its ``status.provenance``, as YAML on stdout for ``kubectl apply -f -``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubeloop.api.reproduce import NotReproducibleError, pinned_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeloop reproduce", description=__doc__)
    parser.add_argument("file", type=Path, help="a TrainingJob with its status, YAML or JSON ('-': stdin)")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        document = yaml.safe_load(text)
        if not isinstance(document, dict) or document.get("kind") != "TrainingJob":
            raise NotReproducibleError("not a TrainingJob")
        manifest = pinned_manifest(document)
    except (OSError, yaml.YAMLError, ValidationError, NotReproducibleError) as error:
        print(f"kubeloop reproduce: {error}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(manifest, sort_keys=False), end="")
    return 0
