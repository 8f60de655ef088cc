#!/usr/bin/env bash
# `make demo`: the local control plane, the operator, the examples, and `kubectl get kubeloop`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(hack/cluster.sh up)"
export KUBECONFIG PATH
ns=kubeloop-demo
log=.run/operator.log

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing the CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

step "starting the operator (log: $log)"
pkill -f "kubeloop operator -n $ns" 2>/dev/null || true
KUBELOOP_OPERATOR_METRICS_PORT=0 nohup .venv/bin/kubeloop operator -n "$ns" --liveness "" >"$log" 2>&1 &
echo $! > .run/operator.pid

step "applying manifests/examples to namespace $ns"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$ns" -f manifests/examples/

step "waiting for the examples to become Ready/Running"
kubectl wait -n "$ns" --for=condition=Ready --timeout=120s modeldeployment/churn driftmonitor/churn-drift
for tj in churn-gbm churn-mlp-ddp; do
  kubectl wait -n "$ns" --for=jsonpath='{.status.phase}'=Running --timeout=120s "trainingjob/$tj"
done

step "kubectl get kubeloop -n $ns"
kubectl get kubeloop -n "$ns"
step "what the operator created"
kubectl get deployments,services,hpa,pdb,jobs,cronjobs,pods -n "$ns"

if [ -x hack/demo-loop.sh ]; then
  step "the data plane, for real: train -> register -> serve -> drift check"
  hack/demo-loop.sh
fi

cat <<EOT

The operator keeps running (pid $(cat .run/operator.pid)). Try:
  export KUBECONFIG=$KUBECONFIG PATH=$(dirname "$(command -v kubectl)"):\$PATH
  kubectl get kubeloop -n $ns
  kubectl describe modeldeployment churn -n $ns
Stop everything with: make cluster-down
EOT
