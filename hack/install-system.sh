#!/usr/bin/env bash
# System tools for the chart and observability tests, installed without prompts; idempotent, and
# silent when everything is already there:
#   prometheus + promtool  Debian's prometheus package (never started as a service: tests run the
#                          binary themselves, with a temp config and data directory)
#   postgresql             Debian's postgresql (initdb, postgres under /usr/lib/postgresql/<v>/bin; never
#                          started as a service: tests/fixtures/postgres.py runs a throwaway cluster)
#   kubeconform            go install at a pinned version, cached under ~/.cache/kubeloop/bin/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)

if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-system: need root (or sudo) for apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo -n)
  fi
  echo "install-system: apt-get install ${missing[*]}" >&2
  # Installing a package must not start its service: policy-rc.d answers "no" to every start.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$root/hack/kubeconform.sh" --install
