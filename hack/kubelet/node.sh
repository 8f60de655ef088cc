#!/usr/bin/env bash
# A REAL node next to a private control plane: etcd + kube-apiserver + kube-controller-manager +
# kube-scheduler (binaries from hack/build-k8s.sh) and kubelet v1.36 on containerd + runc
# (Debian bookworm packages), with CNI bridge networking. Independent of hack/cluster.sh:
# own ports, own PKI, own state dir; it never touches the kwok cluster.
#
#   hack/kubelet/node.sh deps     # apt-get install containerd runc containernetworking-plugins iptables busybox-static
#   hack/kubelet/node.sh build    # kubelet + kube-proxy v1.36.1 (copy of build-k8s.sh wrapper module) and
#                                 # the add-on servers (hack/build-addons.sh), all cached by version
#   hack/kubelet/node.sh up       # PKI, control plane, containerd, CNI, local images, kubelet, kube-proxy,
#                                 # add-ons (hack/addons): CoreDNS, metrics-server, SeaweedFS S3; the
#                                 # Prometheus image the chart's prometheus.enabled runs (hack/local-values.yaml)
#                                 # and, when KUBELOOP_ADDONS names prometheus-adapter, the image of the chart's
#                                 # prometheusAdapter.enabled (hack/platform.sh prometheus-adapter)
#   hack/kubelet/node.sh images FILE|DIR...  # import image archives (*.tar of a DIR) into containerd (k8s.io)
#                                 # (also at `up`: KUBELOOP_IMAGES="DIR|FILE ...")
#   KUBELOOP_ADDONS="coredns metrics-server s3 prometheus" (default) selects the add-ons `build` and `up` handle.
#   KUBELOOP_TRUST_REGISTRY=127.0.0.1:5000 (at `up`): containerd pulls from that plain-HTTP registry
#                                 (hack/registry.sh), via $CERTS_D/<host>/hosts.toml (removed by `down`)
#   hack/kubelet/node.sh pack NAME...  # print `REF ARCHIVE` of add-on images (coredns metrics-server seaweedfs
#                                 # prometheus prometheus-adapter), packed without containerd (hack/push-images.sh pushes them)
#   As a stand-in for a cluster that imports nothing from here (`make demo` on an existing cluster):
#     KUBELOOP_ADDONS="coredns metrics-server" KUBELOOP_TRUST_REGISTRY=127.0.0.1:5000 hack/kubelet/node.sh up
#   hack/kubelet/node.sh status
#   hack/kubelet/node.sh down     # delete pods, stop what `up` started (by recorded pid), unmount, remove state
#   hack/kubelet/node.sh purge    # down + containerd's image store and /var/log/pods
#
# Then: export KUBECONFIG=$KUBELET_WORKDIR/admin.kubeconfig (printed by `up`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/hack/go-env.sh"
W="${KUBELET_WORKDIR:-/tmp/kubeloop-node}"
NODE="${KUBELET_NODE_NAME:-kubeloop-real-node}"
NODE_IP="${KUBELET_NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if ($i=="src") print $(i+1)}')}"
K8S_VERSION=v1.36.1
KUBELET_BIN="${KUBELET_BIN:-$HOME/.cache/kubeloop/bin/kubelet-$K8S_VERSION/kubelet}"
ETCD_PORT=22379 ETCD_PEER_PORT=22380 APISERVER_PORT=26443 KCM_PORT=20257 SCHED_PORT=20259
SERVICE_CIDR=10.97.0.0/16 POD_CIDR=10.244.0.0/16  # not 10.88/16: podman's cni-podman0 (image builds) has it
PAUSE_IMAGE=localhost/kubeloop/pause:v1 BUSYBOX_IMAGE=localhost/kubeloop/busybox:v1
CTR_SOCK=/run/containerd/containerd.sock
CERTS_D=/etc/containerd/certs.d  # containerd's registry hosts (config_path in containerd.toml)

# Cluster add-ons (hack/addons/*.yaml; binaries from hack/build-addons.sh, images built here).
# The image references and fixed ClusterIPs below are also written in those manifests.
DNS_IP=10.97.0.10 S3_IP=10.97.0.20 S3_PORT=8333
COREDNS_VERSION=v1.15.0 METRICS_SERVER_VERSION=v0.8.0 SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
PROMETHEUS_VERSION=v3.5.1  # also in hack/local-values.yaml and the chart's default (tests/unit/chart check)
PROMETHEUS_ADAPTER_VERSION=v0.12.0  # also in hack/local-values.yaml and the chart's default
COREDNS_IMAGE=localhost/kubeloop/coredns:$COREDNS_VERSION
METRICS_SERVER_IMAGE=localhost/kubeloop/metrics-server:$METRICS_SERVER_VERSION
SEAWEEDFS_IMAGE=localhost/kubeloop/seaweedfs:$SEAWEEDFS_VERSION
PROMETHEUS_IMAGE=localhost/kubeloop/prometheus:$PROMETHEUS_VERSION  # image only: the chart runs it
PROMETHEUS_ADAPTER_IMAGE=localhost/kubeloop/prometheus-adapter:$PROMETHEUS_ADAPTER_VERSION  # image only, too
IMAGE_CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/images"
ADDONS="$root/hack/addons"
ENABLED_ADDONS="${KUBELOOP_ADDONS-coredns metrics-server s3 prometheus}"  # subset to build/install; "" for none
enabled() { case " $ENABLED_ADDONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Host sysctls the kubelet (kernel tunables, protectKernelDefaults=false) and kube-proxy (conntrack,
# route_localnet) rewrite on start. Saved by `up`, restored by `down`: this machine is shared.
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait"

log() { echo "[kubelet-node] $*" >&2; }
bin() { "$root/hack/build-k8s.sh"; }
kc() { KUBECONFIG="$W/admin.kubeconfig" "$(bin)/kubectl" "$@"; }
addon_bin() { COREDNS_VERSION=$COREDNS_VERSION METRICS_SERVER_VERSION=$METRICS_SERVER_VERSION \
  SEAWEEDFS_VERSION=$SEAWEEDFS_VERSION PROMETHEUS_VERSION=$PROMETHEUS_VERSION \
  PROMETHEUS_ADAPTER_VERSION=$PROMETHEUS_ADAPTER_VERSION \
  "$root/hack/build-addons.sh" "$1" | awk '{print $2}'; }
s3check_bin() {  # the S3 client of hack/addons/s3check, cached by source hash
  local h; h=$(sha256sum "$ADDONS/s3check/main.go" | cut -c1-12)
  local out="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/bin/s3check-$h/s3check"
  [ -x "$out" ] || { log "building s3check"; mkdir -p "$(dirname "$out")"
    CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags '-s -w' -o "$out" "$ADDONS/s3check/main.go"; }
  echo "$out"
}

deps() {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends containerd runc containernetworking-plugins iptables busybox-static >&2
}

build() {  # everything `up` needs: kubelet, kube-proxy, the add-on servers and s3check (cached)
  build_node >/dev/null
  ! enabled coredns || addon_bin coredns >/dev/null
  ! enabled metrics-server || addon_bin metrics-server >/dev/null
  ! enabled s3 || { addon_bin seaweedfs >/dev/null; s3check_bin >/dev/null; }
  ! enabled prometheus || addon_bin prometheus >/dev/null
  ! enabled prometheus-adapter || addon_bin prometheus-adapter >/dev/null
  echo "$KUBELET_BIN"
}

build_node() {  # kubelet and kube-proxy, next to each other in $(dirname $KUBELET_BIN)
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
  if [ -f "$W/pids/$name" ] && kill -0 "$(cat "$W/pids/$name")" 2>/dev/null; then log "$name already running"; return; fi
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
  front_proxy_pki
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

front_proxy_pki() {  # aggregation layer (metrics-server): its own CA and the apiserver's proxy client cert
  [ -f "$W/pki/front-proxy-client.crt" ] && return
  mkdir -p "$W/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/pki/front-proxy-ca.key" -out "$W/pki/front-proxy-ca.crt" \
    -days 30 -subj "/CN=kubeloop-front-proxy-ca" 2>/dev/null
  openssl genrsa -out "$W/pki/front-proxy-client.key" 2048 2>/dev/null
  openssl req -new -key "$W/pki/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$W/pki/front-proxy-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$W/pki/front-proxy-client.ext"
  openssl x509 -req -in "$W/pki/front-proxy-client.csr" -CA "$W/pki/front-proxy-ca.crt" -CAkey "$W/pki/front-proxy-ca.key" \
    -CAcreateserial -days 30 -extfile "$W/pki/front-proxy-client.ext" -out "$W/pki/front-proxy-client.crt" 2>/dev/null
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

addon_archive() {  # name ref binary...: a minimal image (static binaries in /, uid 65532); prints its archive (cached)
  local name=$1 ref=$2; shift 2
  local tar="$IMAGE_CACHE/addons/$name-${ref##*:}.tar" b fresh=1
  for b in "$@" "$here/mkimage.py"; do [ -f "$tar" ] && [ ! "$b" -nt "$tar" ] || fresh=0; done
  if [ "$fresh" = 0 ]; then
    log "packing image $ref"
    local r="$W/rootfs/$name"
    rm -rf "$r" && mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$IMAGE_CACHE/addons"
    for b in "$@"; do cp "$b" "$r/"; done
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
    chmod 1777 "$r/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
    python3 "$here/mkimage.py" "$r" "$ref" "$tar.tmp" --entrypoint "/$(basename "$1")" --user 65532 >&2
    mv "$tar.tmp" "$tar"
  fi
  echo "$tar"
}

addon_image() { local tar; tar=$(addon_archive "$@"); import_archive "$tar"; }

pack() {  # NAME...: print `REF ARCHIVE` of add-on images, packed without containerd (for a registry push)
  local n W  # a work dir of its own: this may run beside a node, or with none
  W=$(mktemp -d)
  for n in "$@"; do
    case "$n" in
      coredns) echo "$COREDNS_IMAGE $(addon_archive coredns "$COREDNS_IMAGE" "$(addon_bin coredns)")" ;;
      metrics-server) echo "$METRICS_SERVER_IMAGE $(addon_archive metrics-server "$METRICS_SERVER_IMAGE" "$(addon_bin metrics-server)")" ;;
      seaweedfs) echo "$SEAWEEDFS_IMAGE $(addon_archive seaweedfs "$SEAWEEDFS_IMAGE" "$(addon_bin seaweedfs)" "$(s3check_bin)")" ;;
      prometheus) echo "$PROMETHEUS_IMAGE $(addon_archive prometheus "$PROMETHEUS_IMAGE" "$(addon_bin prometheus)")" ;;
      prometheus-adapter) echo "$PROMETHEUS_ADAPTER_IMAGE $(addon_archive prometheus-adapter "$PROMETHEUS_ADAPTER_IMAGE" "$(addon_bin prometheus-adapter)")" ;;
      *) echo "unknown add-on image: $n (coredns|metrics-server|seaweedfs|prometheus|prometheus-adapter)" >&2; rm -rf "$W"; return 2 ;;
    esac
  done
  rm -rf "$W"
}

addon_images() {
  ! enabled coredns || addon_image coredns "$COREDNS_IMAGE" "$(addon_bin coredns)"
  ! enabled metrics-server || addon_image metrics-server "$METRICS_SERVER_IMAGE" "$(addon_bin metrics-server)"
  ! enabled s3 || addon_image seaweedfs "$SEAWEEDFS_IMAGE" "$(addon_bin seaweedfs)" "$(s3check_bin)"
  # Upstream Prometheus (Debian's package lacks Kubernetes service discovery); the binary alone (112 MB).
  ! enabled prometheus || addon_image prometheus "$PROMETHEUS_IMAGE" "$(addon_bin prometheus)"
  # The custom metrics API for in-flight autoscaling (the chart's prometheusAdapter.enabled); 62 MB.
  ! enabled prometheus-adapter || addon_image prometheus-adapter "$PROMETHEUS_ADAPTER_IMAGE" "$(addon_bin prometheus-adapter)"
}

archive_refs() {  # ARCHIVE: the image names an archive carries (OCI index annotations or docker RepoTags)
  python3 -c '
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    names = t.getnames()
    refs = []
    if "index.json" in names:
        for m in json.load(t.extractfile("index.json")).get("manifests", []):
            n = m.get("annotations", {}).get("io.containerd.image.name")
            if n:
                refs.append(n)
    if not refs and "manifest.json" in names:
        for m in json.load(t.extractfile("manifest.json")):
            refs += m.get("RepoTags") or []
print(" ".join(refs))
' "$1"
}

import_archive() {  # ARCHIVE: ctr import into k8s.io unless containerd already holds its refs from this very file
  local tar=$1 refs="" stamp id missing=0 r
  # The stamp (size, mtime, image names) of the archive last imported from this path.
  stamp="$IMAGE_CACHE/.imported/$(realpath "$tar" | sha256sum | cut -c1-16)" id=$(stat -c '%s %Y' "$tar")
  [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$id" ] && refs=$(sed -n 2p "$stamp")
  if [ -n "$refs" ]; then
    for r in $refs; do
      # docker-style short names are stored fully qualified
      r=$(echo "$r" | sed -E 's#^([^/]+)$#docker.io/library/\1#; s#^([^/.:]+/[^/]+)$#docker.io/\1#')
      ctr -n k8s.io images ls -q "name==$r" 2>/dev/null | grep -qxF "$r" || missing=1
    done
    [ "$missing" = 1 ] || return 0
  fi
  refs=$(archive_refs "$tar") || { log "cannot read image archive $tar"; return 1; }
  log "importing $tar (${refs:-no tags})"
  ctr -n k8s.io images import "$tar" >&2
  mkdir -p "$(dirname "$stamp")" && printf '%s\n%s\n' "$id" "$refs" >"$stamp"
}

import_images() {  # FILE|DIR...: image archives (every *.tar directly in a DIR) into containerd's k8s.io namespace
  ctr version >/dev/null 2>&1 || { log "containerd is not running (node.sh up first)"; return 1; }
  local p f n=0
  for p in "$@"; do
    if [ -d "$p" ]; then
      for f in "$p"/*.tar; do [ -f "$f" ] && { import_archive "$f"; n=$((n + 1)); }; done
    elif [ -f "$p" ]; then import_archive "$p"; n=$((n + 1))
    else log "no such image archive or directory: $p"; return 1
    fi
  done
  log "$n image archive(s) in containerd (k8s.io)"
}

prune_superseded() {  # ARCHIVE...: remove other tags of the archives' repositories from containerd
  # The kubelet never garbage-collects here (imageGCHighThresholdPercent 100: these images cannot be
  # pulled again), so every rebuilt tag would stay for ever; keep only the tags just imported.
  local keep="" r repo tag
  for r in $(for a in "$@"; do archive_refs "$a"; done); do
    keep="$keep $(echo "$r" | sed -E 's#^([^/.:]+/[^/]+)$#docker.io/\1#')"
  done
  for r in $keep; do
    repo=${r%:*}
    for tag in $(ctr -n k8s.io images ls -q "name~=^$repo:" 2>/dev/null); do
      case " $keep " in *" $tag "*) ;; *) log "removing superseded $tag"; ctr -n k8s.io images rm "$tag" >/dev/null || log "could not remove $tag" ;; esac
    done
  done
  # The CRI plugin also names every image by its id (sha256:...). That name outlives the tag, and would
  # keep every superseded image's layers and snapshots, so drop the ids that no other name points to.
  local listing named id digest
  listing=$(ctr -n k8s.io images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}')
  named=" $(echo "$listing" | awk '$1 !~ /^sha256:/ {print $2}' | tr '\n' ' ') "
  echo "$listing" | awk '$1 ~ /^sha256:/' | while read -r id digest; do
    case "$named" in *" $digest "*) ;; *) log "removing untagged $id"; ctr -n k8s.io images rm --sync "$id" >/dev/null || log "could not remove $id" ;; esac
  done
}

trust_registry() {  # KUBELOOP_TRUST_REGISTRY=HOST:PORT: containerd pulls from that registry over plain HTTP
  local host=${KUBELOOP_TRUST_REGISTRY:-}
  [ -n "$host" ] || return 0
  mkdir -p "$CERTS_D/$host"
  printf '%s\n' "server = \"http://$host\"" "[host.\"http://$host\"]" '  capabilities = ["pull", "resolve"]' \
    >"$CERTS_D/$host/hosts.toml"
  echo "$host" >"$W/trusted-registry"
  log "containerd pulls from http://$host ($CERTS_D/$host/hosts.toml)"
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
    --requestheader-client-ca-file "$W/pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$W/pki/front-proxy-client.crt" --proxy-client-key-file "$W/pki/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --kubelet-preferred-address-types InternalIP,Hostname  # node name is not resolvable here (logs/exec)
  until KUBECONFIG="$W/admin.kubeconfig" "$b/kubectl" get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
  start kube-controller-manager "$b/kube-controller-manager" --kubeconfig "$W/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$W/controller-manager.kubeconfig" --authorization-kubeconfig "$W/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --use-service-account-credentials \
    --service-account-private-key-file "$W/pki/sa.key" --root-ca-file "$W/pki/ca.crt" \
    --cluster-signing-cert-file "$W/pki/ca.crt" --cluster-signing-key-file "$W/pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
    --horizontal-pod-autoscaler-sync-period=5s
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
clusterDNS: [$DNS_IP]            # CoreDNS (hack/addons/coredns.yaml)
resolvConf: /etc/resolv.conf
serializeImagePulls: false
syncFrequency: 10s                 # mounted ConfigMaps (a canary's routes) refresh within ~10 s, not ~1 min
imageGCHighThresholdPercent: 100   # never GC the locally imported images (they cannot be re-pulled)
# The disk is shared with builds and has no fixed free space: the default imagefs.available<15% evicted
# every pod here (disk-pressure taint). Evict only when the disk is really about to fill.
evictionHard: {memory.available: 100Mi, nodefs.available: 1Gi, imagefs.available: 1Gi, nodefs.inodesFree: 1%, imagefs.inodesFree: 1%}
$(cat "$W/kubelet-extra.yaml" 2>/dev/null || true)
EOF
  start kubelet "$KUBELET_BIN" --config "$W/kubelet-config.yaml" --kubeconfig "$W/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$W/kubelet-root" \
    --node-labels kubeloop.io/real-node=true ${KUBELET_EXTRA_ARGS:-}
}

s3_secret() {  # random credentials for the in-cluster S3 (hack/addons/s3-secret.sh), and $W/s3.env
  KUBECONFIG="$W/admin.kubeconfig" PATH="$(bin):$PATH" "$ADDONS/s3-secret.sh" "$W/s3.env" "http://$S3_IP:$S3_PORT"
}

wait_for() {  # description, seconds, command...: poll until the command succeeds
  local what=$1 n=$2 i; shift 2
  for i in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "timed out after ${n}s waiting for $what"; return 1
}

addons() {  # CoreDNS, metrics-server, SeaweedFS S3 (those in $KUBELOOP_ADDONS); each waited for until it answers
  local t=$SECONDS ok=1 f=()
  ! enabled coredns || f+=(-f "$ADDONS/coredns.yaml")
  ! enabled metrics-server || f+=(-f "$ADDONS/metrics-server.yaml")
  ! enabled s3 || { s3_secret; f+=(-f "$ADDONS/s3.yaml"); }
  [ ${#f[@]} -gt 0 ] || return 0
  kc apply "${f[@]}" >/dev/null
  ! enabled coredns || wait_for "CoreDNS answering on $DNS_IP" 120 \
    sh -c "busybox nslookup kubernetes.default.svc.cluster.local $DNS_IP | grep -q '${SERVICE_CIDR%.0/16}.1'" || ok=0
  if enabled s3; then
    wait_for "S3 buckets (job kubeloop-system/s3-buckets)" 180 \
      kc -n kubeloop-system wait --for=condition=Complete job/s3-buckets --timeout=1s || ok=0
    wait_for "S3 from the host at $S3_IP:$S3_PORT" 60 \
      sh -c ". '$W/s3.env' && '$(s3check_bin)' ls | grep -qx mlflow" || ok=0
  fi
  ! enabled metrics-server || wait_for "metrics API (APIService v1beta1.metrics.k8s.io Available)" 120 \
    kc wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=1s || ok=0
  if [ "$ok" = 0 ]; then
    kc get pods,jobs -n kube-system -o wide >&2 || true
    kc get pods,jobs -n kubeloop-system -o wide >&2 || true
    log "add-ons not ready; see kubectl describe / logs in kube-system and kubeloop-system"; return 1
  fi
  log "add-ons ready in $((SECONDS - t)) s ($ENABLED_ADDONS): DNS $DNS_IP, metrics.k8s.io, S3 http://$S3_IP:$S3_PORT (credentials: $W/s3.env, Secret kubeloop-system/kubeloop-s3)"
}

kube_proxy_up() {  # Service ClusterIPs/NodePorts (iptables mode, nft backend of Debian's iptables)
  # kube-proxy exits when its config file changes: on a second `up`, rewrite it only if it differs.
  cat >"$W/kube-proxy-config.yaml.new" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$W/kube-proxy.kubeconfig"}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
$(cat "$W/kube-proxy-extra.yaml" 2>/dev/null || true)
EOF
  if cmp -s "$W/kube-proxy-config.yaml.new" "$W/kube-proxy-config.yaml"; then
    rm "$W/kube-proxy-config.yaml.new"
  else
    mv "$W/kube-proxy-config.yaml.new" "$W/kube-proxy-config.yaml"
  fi
  start kube-proxy "$(dirname "$KUBELET_BIN")/kube-proxy" --config "$W/kube-proxy-config.yaml"
}

up() {
  local t0=$SECONDS
  build >/dev/null
  mkdir -p "$W/logs" "$W/pids"
  [ -f "$W/sysctl.orig" ] || for k in $SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done >"$W/sysctl.orig"
  sysctl -qw net.ipv4.ip_forward=1  # pod traffic is routed through the CNI bridge
  pki
  controlplane
  trust_registry
  containerd_up
  images
  addon_images
  # shellcheck disable=SC2086  # a list of archives/directories
  [ -z "${KUBELOOP_IMAGES:-}" ] || { import_images $KUBELOOP_IMAGES && prune_superseded $KUBELOOP_IMAGES; }
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
  addons
  log "up in $((SECONDS - t0)) s"
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
  # Their network namespaces are noted first: /run/netns/cni-* is shared with podman (image builds).
  local netns=""
  if ctr version >/dev/null 2>&1; then
    netns=$(for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers info "$c" 2>/dev/null; done |
      grep -oE '/run/netns/cni-[0-9a-f-]+' | sort -u || true)
    for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" 2>/dev/null || true; done
    sleep 1
    for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" 2>/dev/null || true; done
    for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers delete "$c" 2>/dev/null || true; done
  fi
  stop containerd
  [ -x "$(dirname "$KUBELET_BIN")/kube-proxy" ] && "$(dirname "$KUBELET_BIN")/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # iptables state of the kubelet (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), kube-proxy
  # (KUBE-*) and CNI bridge/portmap (CNI-* chains whose rules carry the comment name: "kubeloop").
  # podman (image builds) has CNI-* chains of its own, and the shared CNI-HOSTPORT-* ones: kept.
  local ipt t c ours
  for ipt in iptables ip6tables; do
    for t in filter nat mangle; do
      ours=$("$ipt" -t "$t" -S 2>/dev/null | grep -F 'name: \"kubeloop\"' | awk '$1=="-A" && $2 ~ /^CNI-/ {print $2}' | sort -u || true)
      "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A [^ ]+ .*(-j KUBE-|name: \\"kubeloop\\")' |
        sed 's/^-A/-D/' | while read -r r; do eval "$ipt -t $t $r" 2>/dev/null || true; done || true
      for c in $ours $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}'); do "$ipt" -t "$t" -F "$c" 2>/dev/null || true; done
      for c in $ours $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}'); do "$ipt" -t "$t" -X "$c" 2>/dev/null || true; done
    done
  done
  # Leftover mounts under the work dir (projected volumes) and containerd's state, and the pods' netns.
  grep -oE " ($W|/run/containerd|/var/lib/containerd)[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
  for n in $netns; do umount -l "$n" 2>/dev/null || true; rm -f "$n"; done
  ip link del kubeloop0 2>/dev/null || true
  # The kubelet's QoS cgroup tree (cgroupfs driver, cgroup v1: one tree per controller).
  for d in /sys/fs/cgroup/*/kubepods; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  rm -f /etc/cni/net.d/10-kubeloop.conflist
  [ ! -s "$W/trusted-registry" ] || rm -rf "${CERTS_D:?}/$(cat "$W/trusted-registry")"
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
  KUBECONFIG="$W/admin.kubeconfig" "$(bin)/kubectl" get pods -n kube-system -o wide 2>&1 || true
  KUBECONFIG="$W/admin.kubeconfig" "$(bin)/kubectl" get pods -n kubeloop-system -o wide 2>&1 || true
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  up) up ;;
  images) shift; [ $# -gt 0 ] || { echo "usage: $0 images FILE|DIR..." >&2; exit 2; }; import_images "$@" ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  pack) shift; pack "$@" ;;
  *) echo "usage: $0 deps|build|up|down|purge|status|images FILE|DIR...|pack NAME..." >&2; exit 2 ;;
esac
