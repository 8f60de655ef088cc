#!/usr/bin/env bash
# Checks a real kubelet node brought up by hack/kubelet/node.sh: restricted Pods run, logs/exec/
# port-forward work, pod<->pod, pod->Service, host->Service, Job completes, memory limit OOM-kills;
# and the add-ons: cluster DNS (Services, indexed-Job pods behind a headless Service), metrics-server
# (kubectl top, HPA utilisation), S3 put/get from a pod and from the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
W="${KUBELET_WORKDIR:-/tmp/kubeloop-node}"
# Never the ambient KUBECONFIG (it may point at the shared kwok cluster).
export KUBECONFIG="$W/admin.kubeconfig"
PATH="$("$here/../build-k8s.sh"):$PATH"
ns=kubelet-smoke fail=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "ok   $name: $(echo "$out" | tail -1)"; else echo "FAIL $name: $(echo "$out" | tail -2 | tr '\n' ' ')"; fail=1; fi; }

kubectl apply -f "$here/smoke.yaml" >/dev/null
check "pods Ready (restricted PSA namespace)" kubectl -n $ns wait --for=condition=Ready pod/web pod/client --timeout=120s
check "job Complete" kubectl -n $ns wait --for=condition=Complete job/job --timeout=60s
check "job output via Service env" sh -c "kubectl -n $ns logs job/job | grep -x hello-from-web"
check "logs" sh -c "kubectl -n $ns logs web | grep 'web starting as uid=65532'"
check "exec: non-root, no caps, seccomp, no_new_privs" sh -c "kubectl -n $ns exec web -- sh -c 'id -u; grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status' | tr '\n' ' ' | grep -E '^65532 CapEff:\s+0+ NoNewPrivs:\s+1 Seccomp:\s+2'"
check "read-only root filesystem" sh -c "! kubectl -n $ns exec web -- touch /x 2>/dev/null"
ip=$(kubectl -n $ns get pod web -o jsonpath='{.status.podIP}')
svc=$(kubectl -n $ns get svc web -o jsonpath='{.spec.clusterIP}')
check "host -> pod $ip" sh -c "curl -sf -m 3 http://$ip:8080/index.html"
check "pod -> pod" sh -c "kubectl -n $ns exec client -- sh -c \"printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 $ip 8080 | tail -1\" | grep -x hello-from-web"
check "pod -> Service $svc (kube-proxy)" sh -c "kubectl -n $ns exec client -- sh -c \"printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 $svc 80 | tail -1\" | grep -x hello-from-web"
check "host -> Service" sh -c "curl -sf -m 3 http://$svc/index.html"
check "port-forward" sh -c "kubectl -n $ns port-forward pod/web 18080:8080 >/dev/null 2>&1 & pf=\$!; sleep 2; curl -sf -m 3 http://127.0.0.1:18080/index.html; r=\$?; kill \$pf; exit \$r"
check "memory limit -> OOMKilled" sh -c "for i in \$(seq 60); do r=\$(kubectl -n $ns get pod oom -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}'); [ -n \"\$r\" ] && break; sleep 1; done; echo \$r | grep -x OOMKilled"
check "kubelet stats summary" sh -c "kubectl get --raw /api/v1/nodes/\$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')/proxy/stats/summary | grep -c usageNanoCores"

# --- add-ons --------------------------------------------------------------------------------------
dns=$(kubectl -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}')
# The Secret lives in kubeloop-system; a workload namespace gets a copy (as an app would).
kubectl -n $ns create secret generic kubeloop-s3 --dry-run=client -o yaml \
  --from-literal=AWS_ACCESS_KEY_ID="$(kubectl -n kubeloop-system get secret kubeloop-s3 -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d)" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$(kubectl -n kubeloop-system get secret kubeloop-s3 -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d)" |
  kubectl apply -f - >/dev/null
# shellcheck disable=SC1091
. "$W/s3.env"   # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (the Service's fixed ClusterIP)
s3curl() { curl -sf -m 10 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }
host_put() { printf hello-from-host | s3curl -T - "$AWS_ENDPOINT_URL/kubeloop/smoke/from-host.txt" && echo "put kubeloop/smoke/from-host.txt"; }
host_get() { s3curl "$AWS_ENDPOINT_URL/kubeloop/smoke/from-pod.txt" | grep -x hello-from-pod; }
buckets() { local l; l=$(s3curl "$AWS_ENDPOINT_URL/" | grep -o '<Name>[^<]*</Name>' | sed 's/<[^>]*>//g' | tr '\n' ' '); echo "$l" | grep -qw kubeloop && echo "$l" | grep -w mlflow; }
svc_fqdn() { kubectl -n $ns exec client -- nslookup "web.$ns.svc.cluster.local" | grep -A1 '^Name:' | grep -x "Address: $svc"; }
svc_short() { kubectl -n $ns exec client -- sh -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 web 80 | tail -1" | grep -x hello-from-web; }
host_dns() { busybox nslookup kubernetes.default.svc.cluster.local "$dns" | grep -A1 '^Name:' | grep -x "Address: ${svc%.*.*}.0.1"; }
rdzv() {  # each worker resolved rdzv-0 and rdzv-1 (headless Service, pods never Ready) to the pods' IPs
  kubectl -n $ns wait --for=condition=Complete job/rdzv --timeout=120s >/dev/null || return 1
  local sel=job-name=rdzv,batch.kubernetes.io/job-completion-index ip0 ip1 i
  ip0=$(kubectl -n $ns get pod -l $sel=0 -o jsonpath='{.items[0].status.podIP}')
  ip1=$(kubectl -n $ns get pod -l $sel=1 -o jsonpath='{.items[0].status.podIP}')
  for i in 0 1; do kubectl -n $ns logs -l $sel=$i | grep "rdzv-0=$ip0 rdzv-1=$ip1\$" || return 1; done
}
pod_s3() { kubectl -n $ns wait --for=condition=Complete job/s3 --timeout=90s >/dev/null && kubectl -n $ns logs job/s3 -c get | grep -x hello-from-host; }
top_pod() { for _ in $(seq 90); do kubectl -n $ns top pod web --no-headers 2>/dev/null && return 0; sleep 2; done; kubectl -n $ns top pod web; }
hpa() {
  local u
  for _ in $(seq 90); do
    u=$(kubectl -n $ns get hpa burner -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')
    [ -n "$u" ] && { kubectl -n $ns get hpa burner --no-headers; return 0; }
    sleep 2
  done
  kubectl -n $ns describe hpa burner; return 1
}
check "S3 put from the host ($AWS_ENDPOINT_URL, curl SigV4 path-style)" host_put
kubectl apply -f "$here/smoke-addons.yaml" >/dev/null
check "DNS: Service FQDN from a pod (nameserver $dns)" svc_fqdn
check "DNS: short Service name from a pod (search path)" svc_short
check "DNS: host -> kube-dns ClusterIP" host_dns
check "DNS: indexed-Job pods via headless Service (not Ready)" rdzv
check "S3: pod get (host's object) + put (Secret creds, DNS name)" pod_s3
check "S3 get from the host (pod's object)" host_get
check "S3 buckets kubeloop + mlflow" buckets
check "kubectl top pod (metrics-server)" top_pod
check "HPA current CPU utilisation known" hpa
s3curl -X DELETE "$AWS_ENDPOINT_URL/kubeloop/smoke/from-host.txt" >/dev/null || true
s3curl -X DELETE "$AWS_ENDPOINT_URL/kubeloop/smoke/from-pod.txt" >/dev/null || true
[ "${KEEP:-}" ] || kubectl delete ns $ns --wait=true >/dev/null
exit $fail
