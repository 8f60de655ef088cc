#!/usr/bin/env bash
# Keep kubeloop's footprint on a shared disk small. The pinned Go binaries are cached by version under
# ~/.cache/kubeloop/bin, so the Go build and module caches that made them (~/.cache/kubeloop/go, ~18 GB
# after a cold build) only speed up a rebuild at another version: drop them. Then print the free space
# and what kubeloop's caches hold. `make test` runs this first (before the venv's ~5 GB install) and
# hack/e2e-deps.sh last (after the cold builds). Never fails the caller: it reports.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"
CACHE="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}"
WANT_FREE_GB="${KUBELOOP_WANT_FREE_GB:-20}"  # a warm `make test`: a venv, image rebuilds, pods and logs
log() { echo "[trim-caches] $*" >&2; }
kb() { du -sk "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
gb() { awk -v k="$(kb "$@")" 'BEGIN {printf "%.1f", k / 1048576}'; }

mkdir -p "$(dirname "$KUBELOOP_GO_LOCK")"
exec 6>>"$KUBELOOP_GO_LOCK"
if ! flock -n -x 6; then
  log "a Go build is running: Go caches kept"
elif [ -d "$GOCACHE" ] || [ -d "$GOMODCACHE" ]; then
  size=$(kb "$GOCACHE" "$GOMODCACHE")
  command go clean -cache -modcache 2>/dev/null || chmod -R u+w "$GOMODCACHE" 2>/dev/null
  rm -rf "$GOCACHE" "$GOMODCACHE"; rmdir "$(dirname "$GOCACHE")" 2>/dev/null
  [ "$size" -le 16 ] || log "dropped kubeloop's Go build and module caches ($((size / 1024)) MB)"
fi
exec 6>&-

mkdir -p "$CACHE"  # a fresh machine has none yet: df needs a path that exists
free_gb=$(df -Pk "$CACHE" 2>/dev/null | awk 'NR == 2 {printf "%d", $4 / 1048576}')
sizes=$(du -sk "$CACHE"/* 2>/dev/null)  # one walk of the cache: each of its folders
part() { awk -v p="$CACHE/$1" '$2 == p {k = $1} END {printf "%.1f", k / 1048576}' <<<"$sizes"; }
log "disk: ${free_gb:-?} GB free; kubeloop caches: $(awk '{k += $1} END {printf "%.1f", k / 1048576}' <<<"$sizes") GB ($(
  for d in bin images containers; do printf '%s %s GB, ' "$d" "$(part "$d")"; done
)containerd $(gb /var/lib/containerd) GB)"
if [ -n "$free_gb" ] && [ "$free_gb" -lt "$WANT_FREE_GB" ]; then
  log "WARNING: under $WANT_FREE_GB GB free: the install or the image builds may fail with 'No space left on device'"
fi
exit 0
