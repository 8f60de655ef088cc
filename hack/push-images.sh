#!/usr/bin/env bash
# Push the images a cluster that is not this machine's node needs to KUBELOOP_REGISTRY (`make demo` there:
# hack/platform.sh up-existing): kubeloop, trainer and mlflow (hack/images.sh's last build, from its buildah
# store), and the add-on images the chart and the S3 server run: SeaweedFS and Prometheus (packed by
# hack/kubelet/node.sh pack). CoreDNS and metrics-server are the cluster's own.
#
#   KUBELOOP_REGISTRY=registry.example.com/team hack/push-images.sh
#
# TLS is verified unless KUBELOOP_REGISTRY_INSECURE=1 (a plain-HTTP registry, such as hack/registry.sh's).
# Credentials, where the registry wants them: `buildah login REGISTRY` first.
# Writes .run/pushed.env: KUBELOOP_IMAGE, TRAINER_IMAGE, MLFLOW_IMAGE, SEAWEEDFS_IMAGE, PROMETHEUS_IMAGE,
# each REGISTRY/NAME:TAG. A -dirty build tag (kept across edits) gets its build inputs' hash appended, so
# that a node holding an older image of that tag (imagePullPolicy IfNotPresent) never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[push %s] %s\n' "$(date +%T)" "$*" >&2; }
registry="${KUBELOOP_REGISTRY:-}"
if [ -z "$registry" ]; then
  echo "push-images.sh: KUBELOOP_REGISTRY is required on an existing cluster: the registry its nodes pull" \
    "from, e.g. KUBELOOP_REGISTRY=registry.example.com/team (this host's hack/registry.sh:" \
    "KUBELOOP_REGISTRY=127.0.0.1:5000 KUBELOOP_REGISTRY_INSECURE=1)" >&2
  exit 2
fi
registry=${registry%/}
store="${KUBELOOP_CONTAINERS_STORE:-$HOME/.cache/kubeloop/containers}"
[ -f .run/images.env ] || { echo "push-images.sh: no .run/images.env: run hack/images.sh first" >&2; exit 1; }
# shellcheck disable=SC1091
source .run/images.env
B=(buildah --root "$store/root" --runroot "$store/run" --storage-driver "$(cat "$store/.driver")")
tls=true
[ "${KUBELOOP_REGISTRY_INSECURE:-}" != 1 ] || tls=false
exec 9>"$store/.lock"
flock 9  # hack/images.sh builds in the same store

push() {  # local image, destination
  log "$2"
  "${B[@]}" push --quiet --tls-verify="$tls" "$1" "docker://$2" >&2 || {
    log "push to $2 failed (TLS verification: $tls; KUBELOOP_REGISTRY_INSECURE=1 for a plain-HTTP registry;" \
      "buildah login for credentials)"
    return 1
  }
}

pushed=()
for n in kubeloop trainer mlflow; do
  up=${n^^}
  image_var=${up}_IMAGE archive_var=${up}_ARCHIVE
  tag=$IMAGE_TAG
  [[ $tag != *-dirty ]] || tag="$tag-$(head -c 8 "${!archive_var}.inputs")"
  push "${!image_var}" "$registry/$n:$tag"
  pushed+=("${up}_IMAGE=$registry/$n:$tag")
done
packed=$(hack/kubelet/node.sh pack seaweedfs prometheus)
while read -r ref archive; do
  name=${ref%:*} tag=${ref##*:}
  name=${name##*/}
  "${B[@]}" rmi "$ref" >/dev/null 2>&1 || true  # the previous pack's image of that name
  id=$("${B[@]}" pull --quiet "oci-archive:$archive")
  "${B[@]}" tag "$id" "$ref"
  push "$ref" "$registry/$name:$tag"
  pushed+=("${name^^}_IMAGE=$registry/$name:$tag")
done <<<"$packed"
printf '%s\n' "${pushed[@]}" >.run/pushed.env
log "pushed ${#pushed[@]} images to $registry (.run/pushed.env)"
