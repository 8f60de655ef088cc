#!/usr/bin/env bash
# kubeloop on a REAL single-node cluster: the images built here, the node (hack/kubelet/node.sh: control
# plane, kubelet on containerd, CoreDNS, metrics-server, an S3 server), and the Helm chart installed with
# the operator, MLflow, Prometheus (scraping the model servers, for canary analysis) and the local images.
# Used by the e2e tier and `make demo`.
#
#   hack/platform.sh up      # idempotent; prints `export KUBECONFIG=... PATH=...`
#   hack/platform.sh down    # the node and everything on it
#   hack/platform.sh env     # the export line only (node already up)
#   hack/platform.sh s3-secret NAMESPACE   # copy the S3 Secret (credentials + endpoint) into NAMESPACE
#
# It always uses this local node: installing on a cluster KUBECONFIG points at is not built yet (README,
# "Install on a real cluster", for doing it by hand). KUBELOOP_SKIP_IMAGE_BUILD=1 reuses the last build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
release=kubeloop
system_ns=kubeloop-system
W="${KUBELET_WORKDIR:-/tmp/kubeloop-node}"

log() { printf '[platform] %s\n' "$*" >&2; }
bin=$(hack/build-k8s.sh)
export PATH="$bin:$PATH"

images() {
  [ -n "${KUBELOOP_SKIP_IMAGE_BUILD:-}" ] || hack/images.sh >&2  # skip: use the last build's .run/images.env
  # shellcheck disable=SC1091
  source .run/images.env
}

node_up() {
  local line
  line=$(KUBELOOP_IMAGES="$KUBELOOP_ARCHIVE $TRAINER_ARCHIVE $MLFLOW_ARCHIVE" hack/kubelet/node.sh up)
  eval "$line"
  export KUBECONFIG
}

s3_secret() {  # the S3 credentials (made by node.sh in kubeloop-system) copied into namespace $1
  local ns=$1
  kubectl get secret kubeloop-s3 -n "$system_ns" -o json |
    python3 -c 'import json,sys; s=json.load(sys.stdin); ns=sys.argv[1]
m=s["metadata"]; s["metadata"]={"name":m["name"],"namespace":ns}
print(json.dumps(s))' "$ns" | kubectl apply --server-side --force-conflicts -f - >/dev/null
}

chart() {
  log "helm upgrade --install $release (tag $IMAGE_TAG)"
  kubectl create namespace "$system_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$system_ns" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
  # Helm installs CRDs only on first install; keep them current on every run.
  kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
  helm upgrade --install "$release" charts/kubeloop -n "$system_ns" -f hack/local-values.yaml \
    --set image.tag="$IMAGE_TAG" \
    --set operator.settings.trainerImage="$TRAINER_IMAGE" \
    --set mlflow.image.tag="$IMAGE_TAG" \
    --set-string operator.podAnnotations.kubeloop\\.io/image-inputs="$(head -c 16 "$KUBELOOP_ARCHIVE.inputs")" \
    --wait --timeout 10m >&2
  kubectl rollout status -n "$system_ns" deployment --timeout=300s >&2
}

up() {
  images
  node_up
  chart
  echo "export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH"
}

case "${1:-}" in
  up) up ;;
  down) hack/kubelet/node.sh down ;;
  env) echo "export KUBECONFIG=$W/admin.kubeconfig PATH=$bin:\$PATH" ;;
  s3-secret) export KUBECONFIG="${KUBECONFIG:-$W/admin.kubeconfig}"; s3_secret "$2" ;;
  *) echo "usage: $0 up|down|env|s3-secret NAMESPACE" >&2; exit 2 ;;
esac
