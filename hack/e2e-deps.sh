#!/usr/bin/env bash
# Everything the e2e tier and `make demo` need beyond the control plane, overlapped where the 2 cores
# allow: the image builds (mostly network and disk) run beside the Go builds of kubelet, kube-proxy,
# CoreDNS, metrics-server, SeaweedFS and prometheus-adapter (CPU). Both are cached: a warm run takes
# seconds.
#
#   hack/e2e-deps.sh          build (or find) them, in the foreground
#   hack/e2e-deps.sh start    the same in the background at the lowest CPU priority (log: .run/e2e-deps.log):
#                             `make test` starts it after lint, so that a cold machine builds the node while
#                             the unit and cluster tiers run (the e2e tier runs last)
#   hack/e2e-deps.sh wait     wait for a background run; when no run finished (none started, it failed, it was
#                             killed), build in the foreground. The e2e tier calls this before the platform.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .run
finished=.run/e2e-deps.done  # the last run completed; removed when a run begins
lock=.run/e2e-deps.lock      # held by a background run, by its wrapper shell only
log() { echo "[e2e-deps $(date +%T)] $*" >&2; }

case "${1:-}" in
  start)
    exec 8>"$lock"
    flock -n 8 || { log "already running in the background (log: .run/e2e-deps.log)"; exit 0; }
    rm -f "$finished"
    # the wrapper keeps fd 8 (the lock) until the build ends; the build itself does not inherit it
    nohup nice -n 19 bash -c '"$0" 8>&-' "$root/hack/e2e-deps.sh" >.run/e2e-deps.log 2>&1 </dev/null &
    log "building in the background at low priority (log: .run/e2e-deps.log)"
    exit 0 ;;
  wait)
    exec 8>"$lock"
    if ! flock -n 8; then
      log "waiting for the background build (log: .run/e2e-deps.log)"
      flock 8
      log "the background build ended"
    fi
    exec 8>&-
    [ -f "$finished" ] && exit 0
    if [ -s .run/e2e-deps.log ]; then
      tail -n 40 .run/e2e-deps.log >&2
      log "the background build did not finish (above): building in the foreground"
    fi
    exec "$root/hack/e2e-deps.sh" ;;
  "") ;;
  *) echo "usage: $0 [start|wait]" >&2; exit 2 ;;
esac

rm -f "$finished"
hack/images.sh >.run/images.log 2>&1 &
images=$!
# prometheus-adapter first: the cluster tier's adapter test runs before the e2e tier and needs it too
# (it waits on the add-on's lock for a build in progress rather than building it again)
hack/build-addons.sh prometheus-adapter >/dev/null
hack/kubelet/node.sh build >/dev/null
if ! wait "$images"; then
  tail -n 60 .run/images.log >&2
  echo "e2e-deps: image build failed (full log: .run/images.log)" >&2
  exit 1
fi
tail -n 4 .run/images.log >&2
hack/trim-caches.sh  # the cold Go builds are done: their caches go (~18 GB)
touch "$finished"
