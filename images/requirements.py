"""Print kubeloop's runtime requirements (core dependencies + the named extras), one per line.

Used by images/*/Dockerfile to install the dependencies in a layer of their own, before the source
is copied: only pyproject.toml is needed, so a source change rebuilds only the last layers.

    python3 images/requirements.py pyproject.toml operator serving drift s3 > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    name = project["name"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements.py: {name} has no extra {extra!r} (has: {', '.join(optional)})")
        seen.add(extra)
        for req in optional[extra]:
            self_ref = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req.strip())
            if self_ref:  # kubeloop[a,b]: an extra made of other extras
                todo += [e.strip() for e in self_ref.group(1).split(",")]
            elif req not in out:
                out.append(req)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
