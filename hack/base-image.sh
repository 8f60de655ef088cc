#!/usr/bin/env bash
# The local base image for images/*/Dockerfile: Debian bookworm (minbase) + python3 + python3-venv +
# ca-certificates, with security updates, without apt lists, docs, man pages or locales.
# No registry is reachable here, so instead of pulling python:3.11-slim-bookworm the base is made
# with debootstrap and packed by hack/kubelet/mkimage.py into a one-layer OCI archive.
#
#   hack/base-image.sh          build (or find cached) the archive; prints its path on stdout
#   hack/base-image.sh name     prints the image name only
#
# Cached as ~/.cache/kubeloop/images/base-bookworm-py311-<hash>.tar, the hash covering this script
# and mkimage.py: a change to either rebuilds it (~1-2 min), otherwise it costs nothing.
# Needs root (debootstrap, chroot); installs debootstrap with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE_NAME=localhost/kubeloop/base:bookworm-py311
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
cache="${KUBELOOP_IMAGE_CACHE:-$HOME/.cache/kubeloop/images}"
hash="$(cat hack/base-image.sh hack/kubelet/mkimage.py | sha256sum | cut -c1-12)"
archive="$cache/base-bookworm-py311-$hash.tar"
log() { printf '[base-image] %s\n' "$*" >&2; }

if [ "${1:-}" = name ]; then echo "$BASE_IMAGE_NAME"; exit 0; fi
if [ -s "$archive" ]; then echo "$archive"; exit 0; fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    debootstrap >&2
fi
mkdir -p "$cache"
rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
cleanup() {
  for m in proc sys dev; do mountpoint -q "$rootfs/$m" 2>/dev/null && umount -l "$rootfs/$m"; done
  rm -rf "$rootfs"
}
trap cleanup EXIT
start=$SECONDS

log "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates) into $rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

log "security updates"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
# Never keep docs, man pages or locales, also for packages installed later by a derived image.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-kubeloop-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q update >&2
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q -y upgrade >&2
chroot "$rootfs" apt-get clean

log "trimming"
(
  cd "$rootfs"
  rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old var/lib/dpkg/*-old \
    var/log/* tmp/* root/.cache usr/share/info/* usr/share/man/* usr/share/locale/* usr/share/lintian
  find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find usr/share/doc -mindepth 1 -type d -empty -delete
  # Users the images and the chart run as: 65532 (nonroot, distroless convention), 10001 (mlflow).
  # getpass.getuser()/pwd lookups fail for an unknown uid; HOME is /tmp (read-only root elsewhere).
  echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>etc/passwd
  echo 'nonroot:x:65532:' >>etc/group
  echo 'mlflow:x:10001:10001:mlflow:/tmp:/usr/sbin/nologin' >>etc/passwd
  echo 'mlflow:x:10001:' >>etc/group
  # A fixed machine-id-free, hostname-free image.
  : >etc/machine-id
  rm -f etc/hostname
)

log "packing $BASE_IMAGE_NAME"
python3 hack/kubelet/mkimage.py "$rootfs" "$BASE_IMAGE_NAME" "$archive.part" \
  --cmd python3 --env LANG=C.UTF-8 >&2
mv "$archive.part" "$archive"
# Older archives of this base are superseded.
find "$cache" -maxdepth 1 -name 'base-bookworm-py311-*.tar' ! -path "$archive" -delete
log "done in $((SECONDS - start)) s: $archive ($(du -h "$archive" | cut -f1))"
echo "$archive"
