#!/usr/bin/env bash
# A real OCI registry on this host for the "existing cluster" mode of `make demo` (hack/platform.sh): the
# CNCF distribution registry built from the Go module proxy at a pinned version, cached by version, plain
# HTTP on loopback, storage under ~/.cache/kubeloop/registry (kept across up/down: pushed layers stay).
#
#   hack/registry.sh build   # build (or find cached) the registry binary; prints its path
#   hack/registry.sh up      # start it on $KUBELOOP_REGISTRY_ADDR (default 127.0.0.1:5000); idempotent
#   hack/registry.sh down    # stop it (by recorded pid)
#   hack/registry.sh status
#
# Then: KUBELOOP_REGISTRY=127.0.0.1:5000 KUBELOOP_REGISTRY_INSECURE=1 (plain HTTP), and a node that
# trusts it: KUBELOOP_TRUST_REGISTRY=127.0.0.1:5000 hack/kubelet/node.sh up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

VERSION="${DISTRIBUTION_VERSION:-v3.1.2}"
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"
ADDR="${KUBELOOP_REGISTRY_ADDR:-127.0.0.1:5000}"
BIN="$CACHE/bin/registry-$VERSION/registry"
STATE="${KUBELOOP_REGISTRY_STATE:-$CACHE/registry}"  # config, pid, log, and the blobs under data/
log() { echo "[registry] $*" >&2; }

build() {
  if [ ! -x "$BIN" ]; then
    type -P go >/dev/null || { log "go is required to build the registry"; exit 1; }
    log "building distribution registry $VERSION (cold ~3 min)"
    local t=$SECONDS
    mkdir -p "$(dirname "$BIN")"
    CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local GOBIN="$(dirname "$BIN")" \
      go install -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$VERSION" \
      "github.com/distribution/distribution/v3/cmd/registry@$VERSION"
    log "registry built in $((SECONDS - t)) s"
  fi
  echo "$BIN"
}

running() { [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; }

answers() { python3 - "$ADDR" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2).close()
except Exception:
    sys.exit(1)
EOF
}

up() {
  build >/dev/null
  if running; then log "already running on $ADDR (pid $(cat "$STATE/pid"))"; return; fi
  mkdir -p "$STATE/data"
  cat >"$STATE/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $STATE/data}
  delete: {enabled: true}
http:
  addr: $ADDR
EOF
  # OTEL_TRACES_EXPORTER=none: the registry exports traces to localhost:4318 by default.
  OTEL_TRACES_EXPORTER=none nohup "$BIN" serve "$STATE/config.yml" >"$STATE/registry.log" 2>&1 &
  echo $! >"$STATE/pid"
  for _ in $(seq 50); do answers && { log "up on http://$ADDR (storage $STATE/data)"; return; }; sleep 0.2; done
  tail -20 "$STATE/registry.log" >&2
  log "the registry did not answer on $ADDR"; down; return 1
}

down() {
  [ -f "$STATE/pid" ] || return 0
  local pid; pid=$(cat "$STATE/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$STATE/pid"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  status) if running; then echo "running on $ADDR (pid $(cat "$STATE/pid"))"; else echo "not running"; fi ;;
  *) echo "usage: $0 build|up|down|status" >&2; exit 2 ;;
esac
