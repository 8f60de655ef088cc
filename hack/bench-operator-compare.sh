#!/usr/bin/env bash
# bench-operator for another revision's operator against this one, alternating, on one cluster:
#   hack/bench-operator-compare.sh REV [ROUNDS]     (JSON lines on stdout, progress on stderr)
# Each run times its own direct peer, so each ratio is measured within one run; alternating spreads
# the machine's changing load over both revisions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rev=${1:?usage: $0 REV [ROUNDS]} rounds=${2:-3}
tree="$root/.run/bench-tree-$(git rev-parse --short "$rev")"
[ -d "$tree" ] || git worktree add --detach "$tree" "$rev" >&2
eval "$(hack/cluster.sh up)"
export KUBECONFIG PATH
for round in $(seq "$rounds"); do
  for side in current "$rev"; do
    crds=crds/ args=()
    [ "$side" = current ] || { crds="$tree/crds/"; args=(--operator-tree "$tree"); }
    kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
    kubectl wait --for=condition=Established --timeout=60s -f "$crds" >/dev/null
    echo "[compare] round $round: $side" >&2
    .venv/bin/python -m bench.operator_bench "${args[@]}" | .venv/bin/python -c \
      'import json,sys; d=json.load(sys.stdin); d["round"]=int(sys.argv[1]); d["revision"]=sys.argv[2]; print(json.dumps(d))' \
      "$round" "$side"
  done
done
