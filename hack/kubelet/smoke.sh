#!/usr/bin/env bash
# Checks a real kubelet node brought up by hack/kubelet/node.sh: restricted Pods run, logs/exec/
# port-forward work, pod<->pod, pod->Service, host->Service, Job completes, memory limit OOM-kills.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Never the ambient KUBECONFIG (it may point at the shared kwok cluster).
export KUBECONFIG="${KUBELET_WORKDIR:-/tmp/kubeloop-node}/admin.kubeconfig"
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
[ "${KEEP:-}" ] || kubectl delete ns $ns --wait=true >/dev/null
exit $fail
