#!/usr/bin/env bash
# kubeconform with schemas made here, offline: built-in kinds from the OpenAPI (v2) document of the
# Kubernetes version the local control plane is built from (k8s.io/kubernetes module, Go proxy), our
# CRDs from their openAPIV3Schema, ServiceMonitor/PodMonitor from hack/prometheus/schemas/.
# Every object schema is strict (additionalProperties: false) unless the source says otherwise.
#
#   hack/kubeconform.sh [kubeconform args] FILE...|-   validate (-strict, local schemas only)
#   hack/kubeconform.sh --install                      build (or find cached) the binary; prints nothing
#   hack/kubeconform.sh --bin | --schemas              print the binary path | the schema directory
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"
root=$(cd "$(dirname "$0")/.." && pwd)

KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
K8S_VERSION="${K8S_VERSION:-v1.36.1}"
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"
bin="$CACHE/bin/kubeconform-$KUBECONFORM_VERSION/kubeconform"

install_binary() {
  [ -x "$bin" ] && return 0
  type -P go >/dev/null || { echo "go is required to build kubeconform" >&2; exit 1; }
  local tmp; tmp=$(mktemp -d)
  CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$tmp" GOFLAGS="-trimpath" \
    go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
  mkdir -p "$(dirname "$bin")"
  mv "$tmp/kubeconform" "$bin"
  rmdir "$tmp"
}

python() {
  if [ -x "$root/.venv/bin/python" ]; then "$root/.venv/bin/python" "$@"; else python3 "$@"; fi
}

# The schema directory is keyed by everything it is made from, so a changed CRD means a new one.
schema_dir() {
  local key
  key=$(cat "$root"/charts/kubeloop/crds/*.yaml "$root"/hack/prometheus/schemas/*/*.json \
    "$root/hack/kubeconform_schemas.py" | sha256sum | cut -c1-12)
  echo "$CACHE/kubeconform-schemas/k8s-$K8S_VERSION-$key"
}

openapi_v2() {  # a copy kept beside the cache, so hack/trim-caches.sh may drop the module cache
  local kept="$CACHE/src/kubernetes-$K8S_VERSION-swagger.json" module="$GOMODCACHE/k8s.io/kubernetes@$K8S_VERSION"
  if [ ! -f "$kept" ]; then
    if [ ! -f "$module/api/openapi-spec/swagger.json" ]; then
      (cd "${TMPDIR:-/tmp}" && GOTOOLCHAIN=local go mod download "k8s.io/kubernetes@$K8S_VERSION" >&2)
    fi
    mkdir -p "$(dirname "$kept")"
    cp "$module/api/openapi-spec/swagger.json" "$kept.tmp.$$" && mv "$kept.tmp.$$" "$kept"
  fi
  echo "$kept"
}

make_schemas() {
  local dir; dir=$(schema_dir)
  [ -f "$dir/.complete" ] && { echo "$dir"; return 0; }
  local tmp="$dir.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  python "$root/hack/kubeconform_schemas.py" --out "$tmp" \
    --openapi-v2 "$(openapi_v2)" \
    --crds "$root"/charts/kubeloop/crds/*.yaml \
    --extra "$root/hack/prometheus/schemas" >&2
  touch "$tmp/.complete"
  rm -rf "$dir" && mv "$tmp" "$dir"
  echo "$dir"
}

case "${1:-}" in
  --install) install_binary; exit 0 ;;
  --bin) install_binary; echo "$bin"; exit 0 ;;
  --schemas) make_schemas; exit 0 ;;
esac

install_binary
schemas=$(make_schemas)
exec "$bin" -strict -summary \
  -schema-location "$schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" "$@"
