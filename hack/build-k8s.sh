#!/usr/bin/env bash
# Build the local control plane from the Go module proxy at pinned versions, cached by version.
# Prints the bin directory. A warm cache returns in milliseconds; a cold build takes tens of minutes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

K8S_VERSION="${K8S_VERSION:-v1.36.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.10}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="$("$(dirname "$0")/build-helm.sh" --version)"
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_BINS=("${K8S_BINS[@]}" etcd kwok kwokctl helm)

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local

complete() { for b in "${ALL_BINS[@]}"; do [ -x "$BIN/$b" ] || return 1; done; }
if complete; then echo "$BIN"; exit 0; fi
type -P go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
mkdir -p "$BIN"
# One build at a time (two make targets, or a test tier and a script, may ask at once): the second
# waits for the first, then finds the cache complete.
exec 9>"$CACHE/.build-k8s.lock"
flock 9
if complete; then echo "$BIN"; exit 0; fi
log() { echo "[build-k8s] $*" >&2; }

build_kubernetes() {
  local dir="$CACHE/src/kubernetes-$K8S_VERSION" minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  mkdir -p "$dir" && cd "$dir"
  [ -f go.mod ] || {
    go mod init kubeloop.local/k8s-wrapper >&2
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    local upstream; upstream="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    # Each staging module k8s.io/X v0.0.0 is published as k8s.io/X v0.<minor>.<patch>.
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$upstream" | awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@v0.${K8S_VERSION#v1.}"
    done
    echo 'package main' >tools.go
  }
  local v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  local ld="-s -w"
  for p in $v $c; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=(); for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "building ${K8S_BINS[*]} $K8S_VERSION (cold: tens of minutes on 2 cores)"
  go build -ldflags "$ld" -o "$BIN/" "${pkgs[@]}"
}

build_etcd() {
  local dir="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir"
  [ -f go.mod ] || {
    go mod init kubeloop.local/etcd-wrapper >&2
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  }
  log "building etcd $ETCD_VERSION"
  go build -ldflags "-s -w" -o "$BIN/etcd" .
}

build_kwok() {  # kwok carries no replace directives: plain go install works
  log "building kwok, kwokctl $KWOK_VERSION"
  GOBIN="$BIN" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

[ -x "$BIN/etcd" ] || (build_etcd)
[ -x "$BIN/kwokctl" ] || (build_kwok)
[ -x "$BIN/helm" ] || cp "$("$(dirname "$0")/build-helm.sh")" "$BIN/helm"  # helm on the cluster's PATH too
for b in "${K8S_BINS[@]}"; do [ -x "$BIN/$b" ] || { (build_kubernetes); break; }; done
complete || { echo "build incomplete in $BIN" >&2; exit 1; }
echo "$BIN"
