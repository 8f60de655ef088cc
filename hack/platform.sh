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
#   hack/platform.sh up-existing           # the same on the cluster KUBECONFIG (or ~/.kube/config) reaches
#   hack/platform.sh prometheus-adapter    # the local node already up: add prometheus-adapter (below)
#
# KUBELOOP_PROMETHEUS_ADAPTER=1 (up, up-existing): also the chart's prometheusAdapter.enabled, the custom
# metrics API that ModelDeployments with autoscaling.metric inFlight scale on; on the local node its image
# is built here (hack/build-addons.sh, cold ~3 min) and imported, an existing cluster pulls upstream's.
# Off by default: CPU autoscaling (the default) needs only metrics-server.
#
# up-existing (what `make demo` runs there, tests/e2e/target.py decides): that cluster cannot see this
# machine's images, so they are pushed to KUBELOOP_REGISTRY (hack/push-images.sh; TLS verified unless
# KUBELOOP_REGISTRY_INSECURE=1), then the S3 server (hack/addons/s3.yaml, the pushed SeaweedFS image, a
# Secret of random credentials) and the chart are installed with the pushed references. The cluster's own
# CoreDNS and metrics-server are used (checked; a warning when missing). KUBELOOP_SKIP_IMAGE_BUILD=1
# reuses the last build.
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
  ! adapter_wanted || export KUBELOOP_ADDONS="${KUBELOOP_ADDONS-coredns metrics-server s3 prometheus} prometheus-adapter"
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

adapter_wanted() { [ -n "${KUBELOOP_PROMETHEUS_ADAPTER:-}" ]; }

chart() {
  local adapter=()
  ! adapter_wanted || adapter=(--set prometheusAdapter.enabled=true)
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
    "${adapter[@]}" "$@" --wait --timeout 10m >&2
  kubectl rollout status -n "$system_ns" deployment --timeout=300s >&2
  ! adapter_wanted || kubectl wait --for=condition=Available apiservice/v1beta1.custom.metrics.k8s.io --timeout=180s >&2
}

prometheus_adapter() {  # on the local node already up: the adapter's image imported, the chart with it on
  export KUBELOOP_PROMETHEUS_ADAPTER=1 KUBECONFIG="$W/admin.kubeconfig"
  KUBELOOP_SKIP_IMAGE_BUILD=1 images
  local packed ref archive
  packed=$(hack/kubelet/node.sh pack prometheus-adapter)  # REF ARCHIVE
  read -r ref archive <<<"$packed"
  log "importing $ref"
  hack/kubelet/node.sh images "$archive" >&2
  chart
  echo "export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH"
}

up() {
  images
  node_up
  chart
  echo "export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH"
}

cluster_addons() {  # an existing cluster's DNS and metrics API: the demo's pods and HPA need them
  kubectl get service -n kube-system -l k8s-app=kube-dns -o name 2>/dev/null | grep -q . ||
    log "WARNING: no cluster DNS (no Service labelled k8s-app=kube-dns in kube-system): pods cannot resolve Services"
  [ "$(kubectl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" = True ] ||
    log "WARNING: no metrics API (APIService v1beta1.metrics.k8s.io not Available; install metrics-server): HPAs will not scale"
}

s3_existing() {  # the S3 add-on of the local node, on any cluster: pushed image, no fixed ClusterIP
  local note="the endpoint is a port-forward: kubectl port-forward -n $system_ns svc/s3 8333:8333"
  hack/addons/s3-secret.sh .run/s3.env http://127.0.0.1:8333 "$note"
  kubectl create --dry-run=client -o json -f hack/addons/s3.yaml |
    python3 tests/e2e/target.py s3-manifest "$SEAWEEDFS_IMAGE" | kubectl apply -f - >/dev/null
  log "waiting for the S3 server and its buckets (job $system_ns/s3-buckets)"
  kubectl -n "$system_ns" rollout status deployment/s3 --timeout=600s >&2
  kubectl -n "$system_ns" wait --for=condition=Complete job/s3-buckets --timeout=300s >&2
}

up_existing() {
  export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
  [ -n "${KUBELOOP_REGISTRY:-}" ] || { hack/push-images.sh; exit 2; }  # its message names KUBELOOP_REGISTRY
  kubectl version --request-timeout=10s >/dev/null || { log "KUBECONFIG=$KUBECONFIG reaches no cluster"; exit 1; }
  log "installing on the cluster of KUBECONFIG=$KUBECONFIG ($(kubectl config current-context)), images from $KUBELOOP_REGISTRY"
  mkdir -p .run
  # One file for the tests' and the demo's kubectl --kubeconfig, whatever list KUBECONFIG names.
  (umask 077 && kubectl config view --flatten --raw >.run/existing.kubeconfig)
  cluster_addons
  images
  hack/push-images.sh
  # shellcheck disable=SC1091
  source .run/pushed.env
  s3_existing
  local args sets
  args=$(python3 tests/e2e/target.py helm-args .run/pushed.env)  # one a line: --set key=value ...
  mapfile -t sets <<<"$args"
  # The chart's default: hack/local-values.yaml's 30 s counts on the local node's 10 s kubelet sync.
  # The adapter (KUBELOOP_PROMETHEUS_ADAPTER=1): upstream's image, which that cluster can pull.
  ! adapter_wanted || sets+=(--set prometheusAdapter.image.repository=registry.k8s.io/prometheus-adapter/prometheus-adapter)
  chart "${sets[@]}" --set operator.settings.routesPropagationSeconds=90
  echo "export KUBECONFIG=$root/.run/existing.kubeconfig PATH=$bin:\$PATH"
}

case "${1:-}" in
  up) up ;;
  up-existing) up_existing ;;
  prometheus-adapter) prometheus_adapter ;;
  down) hack/kubelet/node.sh down ;;
  env) echo "export KUBECONFIG=$W/admin.kubeconfig PATH=$bin:\$PATH" ;;
  s3-secret) export KUBECONFIG="${KUBECONFIG:-$W/admin.kubeconfig}"; s3_secret "$2" ;;
  *) echo "usage: $0 up|up-existing|prometheus-adapter|down|env|s3-secret NAMESPACE" >&2; exit 2 ;;
esac
