#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (simulated nodes), all built from source by hack/build-k8s.sh. Usage: cluster.sh up|down|status
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name="${KUBELOOP_CLUSTER:-kubeloop}"
run="$root/.run"
kubeconfig="$run/kubeconfig"
export KWOK_WORKDIR="${KWOK_WORKDIR:-$HOME/.cache/kubeloop/kwok}"

bin=$("$root/hack/build-k8s.sh")
kwokctl="$bin/kwokctl"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# The kubeconfig names its certificates and key by path: with them embedded, every Python client
# (kubernetes, kopf) writes them to /tmp files that it removes only at a clean exit, so each killed
# test process left a private key behind.
unembed_credentials() {
  local pki="$run/pki" user cluster
  (umask 077 && mkdir -p "$pki")
  user=$(kubectl config view --raw -o jsonpath='{.users[0].name}')
  cluster=$(kubectl config view --raw -o jsonpath='{.clusters[0].name}')
  kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$pki/ca.crt"
  kubectl config view --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d >"$pki/client.crt"
  (umask 077 && kubectl config view --raw -o jsonpath='{.users[0].user.client-key-data}' | base64 -d >"$pki/client.key")
  kubectl config set-cluster "$cluster" --certificate-authority "$pki/ca.crt" >/dev/null
  kubectl config set-credentials "$user" --client-certificate "$pki/client.crt" --client-key "$pki/client.key" >/dev/null
}

up() {
  mkdir -p "$run"
  if "$kwokctl" get clusters 2>/dev/null | grep -qx "$name"; then
    "$kwokctl" --name "$name" start cluster --wait 2m >&2 || true
  else
    "$kwokctl" --name "$name" create cluster --runtime binary \
      --kube-apiserver-binary "$bin/kube-apiserver" \
      --kube-controller-manager-binary "$bin/kube-controller-manager" \
      --kube-scheduler-binary "$bin/kube-scheduler" \
      --kwok-controller-binary "$bin/kwok" \
      --etcd-binary "$bin/etcd" \
      --config "$root/hack/kwok-stages.yaml" \
      --disable-qps-limits \
      --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
      --extra-args kwok-controller=cidr=10.244.0.0/16 \
      --kubeconfig "$kubeconfig" --wait 2m >&2
  fi
  "$kwokctl" --name "$name" get kubeconfig > "$kubeconfig"
  unembed_credentials
  until kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
  kubectl apply -f "$root/hack/nodes.yaml" >&2
  echo "export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH"
}

down() {
  "$kwokctl" --name "$name" delete cluster >&2 || true
  rm -rf "$kubeconfig" "$run/pki"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) kubectl get --raw /readyz && echo && kubectl get nodes ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
