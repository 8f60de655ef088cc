#!/usr/bin/env bash
# Everything the e2e tier and `make demo` need beyond the control plane, overlapped where the 2 cores
# allow: the image builds (mostly network and disk) run beside the Go builds of kubelet, kube-proxy,
# CoreDNS, metrics-server and SeaweedFS (CPU). Both are cached: a warm run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .run
hack/images.sh >.run/images.log 2>&1 &
images=$!
hack/kubelet/node.sh build >/dev/null
if ! wait "$images"; then
  tail -n 60 .run/images.log >&2
  echo "e2e-deps: image build failed (full log: .run/images.log)" >&2
  exit 1
fi
tail -n 4 .run/images.log >&2
hack/trim-caches.sh  # the cold Go builds are done: their caches go (~18 GB)
