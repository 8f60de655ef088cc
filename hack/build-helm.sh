#!/usr/bin/env bash
# Build (or find cached) the pinned helm alone: the unit tier renders the chart and needs nothing else.
# Prints the path of the helm binary; `--version` prints the pinned version.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
[ "${1:-}" = "--version" ] && { echo "$HELM_VERSION"; exit 0; }
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"
BIN="$CACHE/bin/helm-$HELM_VERSION"

if [ -x "$BIN/helm" ]; then echo "$BIN/helm"; exit 0; fi
mkdir -p "$BIN"
exec 9>"$BIN/.lock"
flock 9  # one build at a time; the second finds the first's binary
if [ -x "$BIN/helm" ]; then echo "$BIN/helm"; exit 0; fi
# the control-plane cache (hack/build-k8s.sh) may hold the same version already
for found in "$CACHE"/bin/*-helm-"$HELM_VERSION"/helm; do
  if [ -x "$found" ]; then cp "$found" "$BIN/helm"; echo "$BIN/helm"; exit 0; fi
done
type -P go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }
echo "[build-helm] building helm $HELM_VERSION (cold: a few minutes)" >&2
CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local GOBIN="$BIN" \
  go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$BIN/helm"
