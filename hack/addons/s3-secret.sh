#!/usr/bin/env bash
# The in-cluster S3's credentials (Secret kubeloop-system/kubeloop-s3), random, generated once per cluster
# and never committed, and a file for this host to source. Used by the local node (hack/kubelet/node.sh)
# and on an existing cluster (hack/platform.sh up-existing). kubectl from PATH, cluster from KUBECONFIG.
#
#   hack/addons/s3-secret.sh ENV_FILE HOST_ENDPOINT [NOTE]
#
# ENV_FILE gets the credentials and AWS_ENDPOINT_URL=HOST_ENDPOINT (how this host reaches the server);
# NOTE, when given, is written above them (e.g. the port-forward that endpoint needs).
set -euo pipefail
env_file=$1 endpoint=$2 note=${3:-}
S3_PORT=8333  # as in hack/addons/s3.yaml

# The namespace as in hack/addons/s3.yaml and the chart's install manifest (restricted PSA).
printf '%s\n' 'apiVersion: v1' 'kind: Namespace' 'metadata:' '  name: kubeloop-system' '  labels:' \
  '    pod-security.kubernetes.io/enforce: restricted' '    pod-security.kubernetes.io/enforce-version: latest' |
  kubectl apply -f - >/dev/null
kubectl -n kubeloop-system get secret kubeloop-s3 >/dev/null 2>&1 ||
  kubectl -n kubeloop-system create secret generic kubeloop-s3 \
    --from-literal=AWS_ACCESS_KEY_ID="kubeloop-$(openssl rand -hex 6)" \
    --from-literal=AWS_SECRET_ACCESS_KEY="$(openssl rand -hex 24)" \
    --from-literal=AWS_ENDPOINT_URL="http://s3.kubeloop-system.svc.cluster.local:$S3_PORT" \
    --from-literal=AWS_DEFAULT_REGION=us-east-1 >/dev/null  # the whole Secret is a workload's envFrom
key=$(kubectl -n kubeloop-system get secret kubeloop-s3 -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d)
secret=$(kubectl -n kubeloop-system get secret kubeloop-s3 -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d)
mkdir -p "$(dirname "$env_file")"
(umask 077
 printf '%s\n' "# The in-cluster S3 (SeaweedFS) from the host: source this file (boto3 >= 1.28 reads AWS_ENDPOINT_URL)." \
   ${note:+"# $note"} "export AWS_ACCESS_KEY_ID=$key" "export AWS_SECRET_ACCESS_KEY=$secret" \
   "export AWS_ENDPOINT_URL=$endpoint" "export AWS_DEFAULT_REGION=us-east-1" >"$env_file")
