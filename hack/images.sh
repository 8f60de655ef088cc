#!/usr/bin/env bash
# Build kubeloop's container images here, without a Docker engine: buildah (daemonless, chroot
# isolation) reads the same images/*/Dockerfile a user builds with `docker build`, on the local
# Debian base of hack/base-image.sh (no registry is reachable from this machine).
#
#   hack/images.sh              build what changed; archives for `ctr -n k8s.io images import`
#   hack/images.sh tag          print the tag only: <pyproject version>-<short sha>[-dirty]
#   hack/images.sh NAME...      build only these (kubeloop trainer mlflow)
#   hack/images.sh verify       run the built images in containerd (read-only root, uid 65532)
#   hack/images.sh start        install buildah/debootstrap, then build all in the background (log:
#                               .run/images-early.log); a later build waits for it, then finds it done
#
# Output: ~/.cache/kubeloop/images/<name>-<tag>.tar (docker-archive, uncompressed layers, named
# docker.io/kubeloop/<name>:<tag>), one line per image `name tag size` on stdout, and .run/images.env
# (IMAGE_TAG, KUBELOOP_IMAGE, TRAINER_IMAGE, MLFLOW_IMAGE, *_ARCHIVE) for the other scripts.
# An image is skipped when its archive for the tag exists and was built from the same inputs
# (a -dirty tag keeps its name across edits, so the inputs' hash decides). Layers are cached in
# ~/.cache/kubeloop/containers: a source change rebuilds only the last layer of each image.
# Progress on stderr. Needs root; installs buildah and debootstrap with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

ALL_IMAGES=(kubeloop trainer mlflow)
REPO_PREFIX="${KUBELOOP_IMAGE_PREFIX:-docker.io/kubeloop}"
cache="${KUBELOOP_IMAGE_CACHE:-$HOME/.cache/kubeloop/images}"
store="${KUBELOOP_CONTAINERS_STORE:-$HOME/.cache/kubeloop/containers}"
ca_bundle="${KUBELOOP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
log() { printf '[images %s] %s\n' "$(date +%T)" "$*" >&2; }

version="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
tag="$version-$(git rev-parse --short=7 HEAD 2>/dev/null || echo nogit)"
if [ "$revision" != unknown ] && { ! git diff --quiet HEAD -- 2>/dev/null || [ -n "$(git ls-files -o --exclude-standard | head -1)" ]; }; then
  tag="$tag-dirty"
fi
if [ "${1:-}" = tag ]; then echo "$tag"; exit 0; fi
if [ "${1:-}" = verify ]; then shift; exec images/verify.sh "$@"; fi

install_tools() {  # in the foreground: apt-get must not race the other installs of `make test`
  local need=()
  command -v buildah >/dev/null || need+=(buildah)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ ${#need[@]} -gt 0 ] || return 0
  log "installing ${need[*]}"
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends "${need[@]}" >&2 \
    || { "${apt[@]}" update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q \
           --no-install-recommends "${need[@]}" >&2; }  # a fresh machine may have no package lists yet
}
install_tools
if [ "${1:-}" = start ]; then
  # `make test` starts here: the base image, the torch download and the image layers (network and disk,
  # mostly) overlap the venv install and the Go builds instead of following them.
  mkdir -p "$root/.run"
  nohup "$root/hack/images.sh" >"$root/.run/images-early.log" 2>&1 </dev/null &
  log "building in the background (log: .run/images-early.log)"
  exit 0
fi
images=("$@")
[ ${#images[@]} -gt 0 ] || images=("${ALL_IMAGES[@]}")
for n in "${images[@]}"; do
  [ -f "images/$n/Dockerfile" ] || { echo "images.sh: no image $n (have: ${ALL_IMAGES[*]})" >&2; exit 2; }
done

# The files each image is built from (what .dockerignore lets into the context, per image).
inputs() {
  local paths
  case "$1" in
    mlflow) paths=(hack/constraints.txt images/pip.sh images/mlflow) ;;
    *) paths=(pyproject.toml README.md hack/constraints.txt images/pip.sh images/requirements.py "images/$1"
              kubeloop operator serving drift trainer .dockerignore) ;;
  esac
  [ "$1" != kubeloop ] || paths+=(dataplane/Cargo.toml dataplane/Cargo.lock dataplane/src)
  git ls-files -co --exclude-standard -- "${paths[@]}" | grep -vE '(__pycache__|\.py[co]$|\.egg-info/)' | sort \
    | while read -r f; do [ -f "$f" ] && printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$f"; done
}

mkdir -p "$cache" "$store" "$root/.run"
exec 9>"$store/.lock"
# one build at a time: two builds would share and race on the layer store
flock -n 9 || { log "waiting for the build that holds $store/.lock"; flock 9; }

# overlay when the kernel lets us (fast, shares layers); vfs (full copies per layer) otherwise.
driver="${KUBELOOP_STORAGE_DRIVER:-}"
if [ -z "$driver" ]; then
  driver="$(cat "$store/.driver" 2>/dev/null || true)"
  if [ -z "$driver" ]; then
    if buildah --root "$store/root" --runroot "$store/run" --storage-driver overlay images >/dev/null 2>&1; then
      driver=overlay
    else
      driver=vfs
    fi
    echo "$driver" >"$store/.driver"
  fi
fi
B=(buildah --root "$store/root" --runroot "$store/run" --storage-driver "$driver")
log "builder: $(buildah --version), storage driver $driver, store $store"

t0=$SECONDS
base_archive="$(hack/base-image.sh)"
base_image="$(hack/base-image.sh name)"
if [ "$(cat "$store/.base" 2>/dev/null)" != "$base_archive" ] || ! "${B[@]}" inspect --type image "$base_image" >/dev/null 2>&1; then
  log "importing $base_image from $base_archive"
  id="$("${B[@]}" pull --quiet "oci-archive:$base_archive")"
  "${B[@]}" tag "$id" "$base_image"
  echo "$base_archive" >"$store/.base"
fi
log "base ready in $((SECONDS - t0)) s"

secret=()
[ -s "$ca_bundle" ] && secret=(--secret "id=ca-bundle,src=$ca_bundle")

declare -A ref archive
for n in "${ALL_IMAGES[@]}"; do
  ref[$n]="$REPO_PREFIX/$n:$tag"
  archive[$n]="$cache/$n-$tag.tar"
done

for n in "${images[@]}"; do
  t=$SECONDS
  sum="$( { inputs "$n"; echo "base $base_archive"; echo "tag $tag"; } | sha256sum | cut -c1-64)"
  if [ -s "${archive[$n]}" ] && [ "$(cat "${archive[$n]}.inputs" 2>/dev/null)" = "$sum" ]; then
    log "$n: ${archive[$n]} is up to date"
    continue
  fi
  log "$n: building ${ref[$n]}"
  if [ "$n" = kubeloop ]; then
    # No Rust image is reachable here: the Dockerfile's dataplane stage takes the binary built on this
    # host (the same Debian release as the base) from the context instead of running cargo itself.
    make -s dataplane >&2
    mkdir -p dataplane/prebuilt
    install -m 0755 dataplane/target/release/kubeloop-dataplane dataplane/prebuilt/kubeloop-dataplane
  fi
  "${B[@]}" build --isolation chroot --layers --pull=never --network host \
    -f "images/$n/Dockerfile" -t "${ref[$n]}" \
    --build-arg "BASE_IMAGE=$base_image" --build-arg "RUST_IMAGE=$base_image" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    "${secret[@]}" . >"$cache/$n.build.log" 2>&1 \
    || { tail -40 "$cache/$n.build.log" >&2; log "$n: build failed, full log: $cache/$n.build.log"; exit 1; }
  log "$n: built in $((SECONDS - t)) s; exporting"
  t2=$SECONDS
  rm -f "${archive[$n]}" "${archive[$n]}.part"
  "${B[@]}" push --quiet "${ref[$n]}" "docker-archive:${archive[$n]}.part:${ref[$n]}" >&2
  mv "${archive[$n]}.part" "${archive[$n]}"
  echo "$sum" >"${archive[$n]}.inputs"
  log "$n: exported in $((SECONDS - t2)) s: ${archive[$n]} ($(du -h "${archive[$n]}" | cut -f1))"
  # Superseded archives and tags of this image; intermediate layers stay cached.
  for old in "$cache/$n"-*.tar; do
    [ "$old" = "${archive[$n]}" ] || rm -f "$old" "$old.inputs"
  done
  "${B[@]}" images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep -x "$REPO_PREFIX/$n:.*" | grep -vx "${ref[$n]}" \
    | xargs -r "${B[@]}" rmi >/dev/null 2>&1 || true
done

# The layer cache only grows (a dependency change leaves a superseded multi-GB torch layer behind): past
# KUBELOOP_STORE_MAX_GB, drop what no tagged image uses. The next build of a changed image is then cold.
max_gb="${KUBELOOP_STORE_MAX_GB:-30}"
used_gb=$(( $(du -sk "$store" | cut -f1) / 1048576 ))
if [ "$used_gb" -gt "$max_gb" ]; then
  log "layer store at $used_gb GB > $max_gb GB: pruning untagged layers"
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true
fi

{
  echo "IMAGE_TAG=$tag"
  for n in "${ALL_IMAGES[@]}"; do
    up="$(echo "$n" | tr a-z A-Z)"
    echo "${up}_IMAGE=${ref[$n]}"
    echo "${up}_ARCHIVE=${archive[$n]}"
  done
} >"$root/.run/images.env"
for n in "${images[@]}"; do
  size="$("${B[@]}" images --noheading --format '{{.Size}}' "${ref[$n]}" 2>/dev/null | head -1 | tr -d ' ')"
  echo "$n $tag ${size:-?} (archive $(du -h "${archive[$n]}" | cut -f1))"
done
log "done in $((SECONDS - t0)) s; .run/images.env written"
