#!/usr/bin/env bash
# Build the cluster add-on servers of the real node (hack/kubelet/node.sh) from the Go module proxy
# at pinned versions, cached by version: CoreDNS, metrics-server, SeaweedFS (S3), and Prometheus (with
# promtool) for the chart's prometheus.enabled (Debian's package is built without Kubernetes service
# discovery, which the chart's scrape configuration needs). prometheus-adapter (the custom metrics API
# for the chart's prometheusAdapter.enabled) is built only when named.
#
#   hack/build-addons.sh [coredns|metrics-server|seaweedfs|prometheus|prometheus-adapter ...]
#   # default: the first four
#
# Prints one line per add-on: NAME PATH-OF-BINARY. Progress goes to stderr. A warm cache returns in
# milliseconds; cold (2 cores, empty module cache): CoreDNS ~4 min, metrics-server ~3 min,
# SeaweedFS ~6 min, prometheus-adapter ~3 min. Built one at a time, never in parallel (shared 2-core machine).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
# SeaweedFS publishes no semver tags on the Go module proxy; pin the pseudo-version it lists.
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
# Prometheus v3.5.1 (an LTS release; the chart's default image tag): Go module versions are v0.<3 digits>.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v3.5.1}"
# The proxy refuses prometheus-adapter's version list; the exact version resolves.
PROMETHEUS_ADAPTER_VERSION="${PROMETHEUS_ADAPTER_VERSION:-v0.12.0}"
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local
log() { echo "[build-addons] $*" >&2; }

coredns_bin() { echo "$CACHE/bin/coredns-$COREDNS_VERSION/coredns"; }
metrics_server_bin() { echo "$CACHE/bin/metrics-server-$METRICS_SERVER_VERSION/metrics-server"; }
seaweedfs_bin() { echo "$CACHE/bin/seaweedfs-$SEAWEEDFS_VERSION/weed"; }
prometheus_bin() { echo "$CACHE/bin/prometheus-$PROMETHEUS_VERSION/prometheus"; }  # promtool beside it
prometheus_adapter_bin() { echo "$CACHE/bin/prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION/adapter"; }

build_coredns() {  # plain go install: CoreDNS's go.mod has no replace directives
  local out; out=$(coredns_bin)
  [ -x "$out" ] && return
  log "building coredns $COREDNS_VERSION (cold ~4 min)"
  local t=$SECONDS
  mkdir -p "$(dirname "$out")"
  GOBIN="$(dirname "$out")" go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  log "coredns built in $((SECONDS - t)) s"
}

build_metrics_server() {  # wrapper module: the tool is a main package inside a larger module
  local out dir; out=$(metrics_server_bin); dir="$CACHE/src/metrics-server-$METRICS_SERVER_VERSION"
  [ -x "$out" ] && return
  log "building metrics-server $METRICS_SERVER_VERSION (cold ~3 min)"
  local t=$SECONDS
  mkdir -p "$dir" "$(dirname "$out")"
  (cd "$dir"
   [ -f go.mod ] || go mod init kubeloop.local/metrics-server-wrapper >&2
   grep -q 'sigs.k8s.io/metrics-server/cmd/metrics-server' go.mod ||
     go get -tool "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" >&2
   go build -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
     -o "$out" sigs.k8s.io/metrics-server/cmd/metrics-server)
  log "metrics-server built in $((SECONDS - t)) s"
}

build_seaweedfs() {  # wrapper module repeating upstream's one replace directive
  local out dir; out=$(seaweedfs_bin); dir="$CACHE/src/seaweedfs-$SEAWEEDFS_VERSION"
  [ -x "$out" ] && return
  log "building seaweedfs $SEAWEEDFS_VERSION (cold ~6 min)"
  local t=$SECONDS
  mkdir -p "$dir" "$(dirname "$out")"
  (cd "$dir"
   [ -f go.mod ] || {
     go mod init kubeloop.local/seaweedfs-wrapper >&2
     go mod edit -go=1.26.6 -replace=github.com/tyler-smith/go-bip39=github.com/cosmos/go-bip39@v1.0.0
     go mod edit -require="github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
   }
   go build -ldflags "-s -w" -o "$out" github.com/seaweedfs/seaweedfs/weed)
  log "seaweedfs built in $((SECONDS - t)) s"
}

build_prometheus() {  # wrapper module repeating upstream's replace and excludes; prometheus + promtool
  local out dir v=${PROMETHEUS_VERSION#v}
  out=$(prometheus_bin); dir="$CACHE/src/prometheus-$PROMETHEUS_VERSION"
  [ -x "$out" ] && [ -x "$(dirname "$out")/promtool" ] && return
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*} patch=${rest#*.}
  local module="v0.$major$(printf '%02d' "$minor").$patch"  # v3.5.1 -> v0.305.1
  log "building prometheus $PROMETHEUS_VERSION (module $module; cold ~10 min)"
  local t=$SECONDS
  mkdir -p "$dir" "$(dirname "$out")"
  (cd "$dir"
   [ -f go.mod ] || {
     go mod init kubeloop.local/prometheus-wrapper >&2
     go mod edit -require="github.com/prometheus/prometheus@$module" \
       -replace=github.com/fsnotify/fsnotify@v1.8.0=github.com/fsnotify/fsnotify@v1.7.0 \
       -exclude=github.com/linode/linodego@v1.0.0 -exclude=github.com/grpc-ecosystem/grpc-gateway@v1.14.7 \
       -exclude=google.golang.org/api@v0.30.0
   }
   local x=github.com/prometheus/common/version
   go build -ldflags "-s -w -X $x.Version=$v -X $x.Revision=$module -X $x.Branch=HEAD -X $x.BuildUser=kubeloop" \
     -o "$(dirname "$out")/" github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool)
  log "prometheus built in $((SECONDS - t)) s"
}

build_prometheus_adapter() {  # wrapper module: `go install @version` asks for the version list, refused
  local out dir; out=$(prometheus_adapter_bin); dir="$CACHE/src/prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION"
  [ -x "$out" ] && return
  log "building prometheus-adapter $PROMETHEUS_ADAPTER_VERSION (cold ~3 min)"
  local t=$SECONDS
  mkdir -p "$dir" "$(dirname "$out")"
  (cd "$dir"
   [ -f go.mod ] || {
     go mod init kubeloop.local/prometheus-adapter-wrapper >&2
     go mod edit -require="sigs.k8s.io/prometheus-adapter@$PROMETHEUS_ADAPTER_VERSION"
   }
   go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$PROMETHEUS_ADAPTER_VERSION" \
     -o "$out" sigs.k8s.io/prometheus-adapter/cmd/adapter)
  log "prometheus-adapter built in $((SECONDS - t)) s"
}

locked() {  # NAME BUILD: one build of an add-on at a time (`make test` builds them in the background while
  # a cluster test may ask for one); a second caller waits, then finds it cached
  mkdir -p "$CACHE"
  (flock 7; "$2") 7>"$CACHE/.build-addons-$1.lock"
}

type -P go >/dev/null || { echo "go is required to build the add-ons" >&2; exit 1; }
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(coredns metrics-server seaweedfs prometheus)
for n in "${names[@]}"; do
  case "$n" in
    coredns) locked coredns build_coredns; echo "coredns $(coredns_bin)" ;;
    metrics-server) locked metrics-server build_metrics_server; echo "metrics-server $(metrics_server_bin)" ;;
    seaweedfs) locked seaweedfs build_seaweedfs; echo "seaweedfs $(seaweedfs_bin)" ;;
    prometheus) locked prometheus build_prometheus; echo "prometheus $(prometheus_bin)" ;;
    prometheus-adapter) locked prometheus-adapter build_prometheus_adapter; echo "prometheus-adapter $(prometheus_adapter_bin)" ;;
    *) echo "unknown add-on: $n (coredns|metrics-server|seaweedfs|prometheus|prometheus-adapter)" >&2; exit 2 ;;
  esac
done
