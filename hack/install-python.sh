#!/usr/bin/env bash
# Create the project's virtualenv and install kubeloop with every extra, without prompts.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -c hack/constraints.txt -e '.[all]'  # pinned: a fresh resolve backtracks for many minutes
bash trainer/install-torch-cpu.sh "$venv/bin/pip"  # PyPI has no CPU-only torch: see the script
