#!/usr/bin/env bash
# A REAL node next to a private control plane: etcd + kube-apiserver + kube-controller-manager +
# kube-scheduler (binaries from hack/build-k8s.sh) and kubelet v1.36 on containerd + runc
# (Debian bookworm packages), with CNI bridge networking. Independent of hack/cluster.sh:
# own ports, own PKI, own state dir; it never touches the kwok cluster.
#
#   hack/kubelet/node.sh deps     # apt-get install containerd runc containernetworking-plugins iptables busybox-static
#   hack/kubelet/node.sh build    # build kubelet + kube-proxy v1.36.1 (copy of build-k8s.sh wrapper module)
#   hack/kubelet/node.sh up       # PKI, control plane, containerd, CNI, local images, kubelet, kube-proxy
#   hack/kubelet/node.sh status
#   hack/kubelet/node.sh down     # delete pods, stop what `up` started (by recorded pid), unmount, remove state
#   hack/kubelet/node.sh purge    # down + containerd's image store and /var/log/pods
#
# Then: export KUBECONFIG=$KUBELET_WORKDIR/admin.kubeconfig (printed by `up`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
W="${KUBELET_WORKDIR:-/tmp/kubeloop-node}"
NODE="${KUBELET_NODE_NAME:-kubeloop-real-node}"
NODE_IP="${KUBELET_NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if ($i=="src") print $(i+1)}')}"
K8S_VERSION=v1.36.1
KUBELET_BIN="${KUBELET_BIN:-$HOME/.cache/kubeloop/bin/kubelet-$K8S_VERSION/kubelet}"
ETCD_PORT=22379 ETCD_PEER_PORT=22380 APISERVER_PORT=26443 KCM_PORT=20257 SCHED_PORT=20259
SERVICE_CIDR=10.97.0.0/16 POD_CIDR=10.88.0.0/16
PAUSE_IMAGE=localhost/kubeloop/pause:v1 BUSYBOX_IMAGE=localhost/kubeloop/busybox:v1
CTR_SOCK=/run/containerd/containerd.sock

# Host sysctls the kubelet (kernel tunables, protectKernelDefaults=false) and kube-proxy (conntrack,
# route_localnet) rewrite on start. Saved by `up`, restored by `down`: this machine is shared.
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait"

log() { echo "[kubelet-node] $*" >&2; }
bin() { "$root/hack/build-k8s.sh"; }

deps() {
  apt-get update -qq
  apt-get install -y --no-install-recommends containerd runc containernetworking-plugins iptables busybox-static >&2
}

build() {  # kubelet and kube-proxy, next to each other in $(dirname $KUBELET_BIN)
  local out; out=$(dirname "$KUBELET_BIN")
  [ -x "$KUBELET_BIN" ] && [ -x "$out/kube-proxy" ] && { echo "$KUBELET_BIN"; return; }
  local src="$HOME/.cache/kubeloop/src/kubelet-$K8S_VERSION" v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version ld="-s -w"
  # A copy of build-k8s.sh's wrapper module, so -mod=mod never rewrites the shared one.
  mkdir -p "$src" "$out"
  cp "$HOME/.cache/kubeloop/src/kubernetes-$K8S_VERSION"/{go.mod,go.sum,tools.go} "$src/"
  for p in $v $c; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "building kubelet and kube-proxy $K8S_VERSION"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local \
     go build -ldflags "$ld" -o "$out/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  echo "$KUBELET_BIN"
}

start() {  # name, command...: background process, pid in $W/pids/name, log in $W/logs/name.log
  local name=$1; shift
  nohup "$@" >"$W/logs/$name.log" 2>&1 &
  echo $! >"$W/pids/$name"
}

cert() {  # name, subject, [extensions]
  local n=$1 subj=$2 ext=${3:-}
  openssl genrsa -out "$W/pki/$n.key" 2048 2>/dev/null
  openssl req -new -key "$W/pki/$n.key" -subj "$subj" -out "$W/pki/$n.csr" 2>/dev/null
  if [ -n "$ext" ]; then
    printf '%s\n' "$ext" >"$W/pki/$n.ext"
    openssl x509 -req -in "$W/pki/$n.csr" -CA "$W/pki/ca.crt" -CAkey "$W/pki/ca.key" -CAcreateserial \
      -days 30 -extfile "$W/pki/$n.ext" -out "$W/pki/$n.crt" 2>/dev/null
  else
    openssl x509 -req -in "$W/pki/$n.csr" -CA "$W/pki/ca.crt" -CAkey "$W/pki/ca.key" -CAcreateserial \
      -days 30 -out "$W/pki/$n.crt" 2>/dev/null
  fi
}

kubeconfig() {  # name (cert), file
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$W/pki/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$W/pki/$1.crt", client-key: "$W/pki/$1.key"}}]
contexts: [{name: local, context: {cluster: local, user: $1}}]
current-context: local
EOF
}

pki() {
  [ -f "$W/pki/ca.crt" ] && return
  mkdir -p "$W/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/pki/ca.key" -out "$W/pki/ca.crt" \
    -days 30 -subj "/CN=kubeloop-node-ca" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%.0/16}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=kubeloop-admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE"
  cert kube-proxy "/CN=system:kube-proxy"
  openssl genrsa -out "$W/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$W/pki/sa.key" -pubout -out "$W/pki/sa.pub" 2>/dev/null
  for n in admin controller-manager scheduler kubelet kube-proxy; do kubeconfig "$n" "$W/$n.kubeconfig"; done
}

images() {  # locally built images (no registry reachable): pause and a busybox userland
  local r="$W/rootfs"
  rm -rf "$r" && mkdir -p "$r/pause" "$r/busybox"/{bin,tmp,etc,proc,sys,dev,root,home/app}
  CGO_ENABLED=0 GOTOOLCHAIN=local go build -ldflags '-s -w' -o "$r/pause/pause" "$here/pause/main.go"
  cp /bin/busybox "$r/busybox/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/busybox/bin/$a"; done
  chmod 1777 "$r/busybox/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:65532:65532:app:/home/app:/bin/sh\n' >"$r/busybox/etc/passwd"
  printf 'root:x:0:\napp:x:65532:\n' >"$r/busybox/etc/group"
  chown 65532:65532 "$r/busybox/home/app"
  python3 "$here/mkimage.py" "$r/pause" "$PAUSE_IMAGE" "$W/pause.tar" --entrypoint /pause --user 65535 >&2
  python3 "$here/mkimage.py" "$r/busybox" "$BUSYBOX_IMAGE" "$W/busybox.tar" --cmd /bin/sh >&2
  ctr -n k8s.io images import "$W/pause.tar" >&2
  ctr -n k8s.io images import "$W/busybox.tar" >&2
  # The pod sandbox image must never be garbage-collected by the kubelet (it cannot be re-pulled).
  ctr -n k8s.io images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
}

containerd_up() {
  if [ -S "$CTR_SOCK" ] && ctr version >/dev/null 2>&1; then log "containerd already running"; return; fi
  start containerd containerd --config "$here/containerd.toml"  # sandbox_image there = $PAUSE_IMAGE
  until ctr version >/dev/null 2>&1; do sleep 0.3; done
}

cni() {
  mkdir -p /etc/cni/net.d
  cat >/etc/cni/net.d/10-kubeloop.conflist <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kubeloop",
  "plugins": [
    {"type": "bridge", "bridge": "kubeloop0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$W/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

controlplane() {
  local b; b=$(bin)
  start etcd "$b/etcd" --name feas --data-dir "$W/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "feas=http://127.0.0.1:$ETCD_PEER_PORT"
  start kube-apiserver "$b/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --secure-port "$APISERVER_PORT" --bind-address 0.0.0.0 --advertise-address "$NODE_IP" \
    --tls-cert-file "$W/pki/apiserver.crt" --tls-private-key-file "$W/pki/apiserver.key" \
    --client-ca-file "$W/pki/ca.crt" \
    --kubelet-client-certificate "$W/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$W/pki/apiserver-kubelet-client.key" \
    --service-account-key-file "$W/pki/sa.pub" --service-account-signing-key-file "$W/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP,Hostname  # node name is not resolvable here (logs/exec)
  until KUBECONFIG="$W/admin.kubeconfig" "$b/kubectl" get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
  start kube-controller-manager "$b/kube-controller-manager" --kubeconfig "$W/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$W/controller-manager.kubeconfig" --authorization-kubeconfig "$W/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --use-service-account-credentials \
    --service-account-private-key-file "$W/pki/sa.key" --root-ca-file "$W/pki/ca.crt" \
    --cluster-signing-cert-file "$W/pki/ca.crt" --cluster-signing-key-file "$W/pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false
  start kube-scheduler "$b/kube-scheduler" --kubeconfig "$W/scheduler.kubeconfig" \
    --authentication-kubeconfig "$W/scheduler.kubeconfig" --authorization-kubeconfig "$W/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT"
}

kubelet_up() {
  mkdir -p "$W/kubelet-root"
  # Only what this host forces is set; everything else is the kubelet default.
  cat >"$W/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CTR_SOCK
cgroupDriver: cgroupfs          # PID 1 is not systemd; cgroups are v1 (hybrid)
failCgroupV1: false             # required: host has cgroup v1, kubelet >=1.35 refuses it by default
failSwapOn: false
address: 0.0.0.0
port: 10250
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$W/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100   # never GC the locally imported images (they cannot be re-pulled)
$(cat "$W/kubelet-extra.yaml" 2>/dev/null || true)
EOF
  start kubelet "$KUBELET_BIN" --config "$W/kubelet-config.yaml" --kubeconfig "$W/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$W/kubelet-root" \
    --node-labels kubeloop.io/real-node=true ${KUBELET_EXTRA_ARGS:-}
}

kube_proxy_up() {  # Service ClusterIPs/NodePorts (iptables mode, nft backend of Debian's iptables)
  cat >"$W/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$W/kube-proxy.kubeconfig"}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
$(cat "$W/kube-proxy-extra.yaml" 2>/dev/null || true)
EOF
  start kube-proxy "$(dirname "$KUBELET_BIN")/kube-proxy" --config "$W/kube-proxy-config.yaml"
}

up() {
  [ -x "$KUBELET_BIN" ] && [ -x "$(dirname "$KUBELET_BIN")/kube-proxy" ] || build >/dev/null
  mkdir -p "$W/logs" "$W/pids"
  [ -f "$W/sysctl.orig" ] || for k in $SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done >"$W/sysctl.orig"
  sysctl -qw net.ipv4.ip_forward=1  # pod traffic is routed through the CNI bridge
  pki
  controlplane
  containerd_up
  images
  cni
  kubelet_up
  kube_proxy_up
  log "waiting for node $NODE to be Ready"
  local b; b=$(bin)
  for _ in $(seq 120); do
    KUBECONFIG="$W/admin.kubeconfig" "$b/kubectl" get node "$NODE" 2>/dev/null | grep -qw Ready && break
    sleep 1
  done
  KUBECONFIG="$W/admin.kubeconfig" "$b/kubectl" get node -o wide >&2
  echo "export KUBECONFIG=$W/admin.kubeconfig PATH=$b:\$PATH"
}

down() {
  local b; b=$(bin)
  # Pods first, through the kubelet, so that CNI DEL runs and mounts are released.
  if [ -f "$W/pids/kubelet" ] && kill -0 "$(cat "$W/pids/kubelet")" 2>/dev/null; then
    KUBECONFIG="$W/admin.kubeconfig" timeout 60 "$b/kubectl" delete pods --all -A --grace-period=1 --wait >/dev/null 2>&1 || true
  fi
  for p in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$p"; done
  # Whatever the kubelet did not tear down: kill the tasks and remove the containers in containerd.
  if ctr version >/dev/null 2>&1; then
    for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" 2>/dev/null || true; done
    sleep 1
    for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" 2>/dev/null || true; done
    for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers delete "$c" 2>/dev/null || true; done
  fi
  stop containerd
  [ -x "$(dirname "$KUBELET_BIN")/kube-proxy" ] && "$(dirname "$KUBELET_BIN")/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # iptables state of the kubelet (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), kube-proxy
  # (KUBE-*) and CNI bridge/portmap (CNI-*, comment name: "kubeloop"). Nothing else on this
  # machine uses iptables (the kwok cluster has no real networking).
  local ipt t c
  for ipt in iptables ip6tables; do
    for t in filter nat mangle; do
      "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*(-j (KUBE|CNI)-|name: \\"kubeloop\\")' |
        sed 's/^-A/-D/' | while read -r r; do eval "$ipt -t $t $r" 2>/dev/null || true; done || true
      for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do "$ipt" -t "$t" -F "$c" 2>/dev/null || true; done
      for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do "$ipt" -t "$t" -X "$c" 2>/dev/null || true; done
    done
  done
  # Leftover mounts under the work dir (projected volumes, netns) and under containerd's state.
  grep -oE " ($W|/run/containerd|/run/netns|/var/lib/containerd)[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
  for n in /run/netns/cni-*; do [ -e "$n" ] && ! grep -q " $n " /proc/self/mounts && rm -f "$n"; done
  ip link del kubeloop0 2>/dev/null || true
  # The kubelet's QoS cgroup tree (cgroupfs driver, cgroup v1: one tree per controller).
  for d in /sys/fs/cgroup/*/kubepods; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  rm -f /etc/cni/net.d/10-kubeloop.conflist
  if [ -f "$W/sysctl.orig" ]; then while read -r kv; do sysctl -qw "$kv" || true; done <"$W/sysctl.orig"; fi
  rm -rf "$W"
  # containerd's image store (/var/lib/containerd) is kept; `purge` removes it too.
}

stop() {  # stop a process this script started, by its recorded pid
  [ -f "$W/pids/$1" ] || return 0
  local pid; pid=$(cat "$W/pids/$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$W/pids/$1"
}

purge() {
  down
  grep -oE " (/run/containerd|/var/lib/containerd)[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
  rm -rf /var/lib/containerd /run/containerd /var/log/pods /var/log/containers
}

status() {
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    if [ -f "$W/pids/$p" ] && kill -0 "$(cat "$W/pids/$p")" 2>/dev/null; then echo "$p: running"; else echo "$p: not running"; fi
  done
  KUBECONFIG="$W/admin.kubeconfig" "$(bin)/kubectl" get nodes -o wide 2>&1 || true
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  up) up ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  *) echo "usage: $0 deps|build|up|down|purge|status" >&2; exit 2 ;;
esac
