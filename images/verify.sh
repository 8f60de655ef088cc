#!/usr/bin/env bash
# Run the images `hack/images.sh` built, for real, in containerd + runc: imported from their archives
# (.run/images.env), each check as the image's user (65532) with a read-only root filesystem and a
# tmpfs /tmp, the way the chart runs them.
#
#   images/verify.sh [kubeloop|trainer|mlflow]...     (hack/images.sh verify ...)
#
# When a containerd answers on the default socket (hack/kubelet/node.sh up), the images go into a
# namespace of their own (kubeloop-images-test) that is removed afterwards; otherwise a private
# containerd (own socket, root and state; no CRI) is started and stopped again.
set -euo pipefail
cd "$(dirname "$0")/.."
. .run/images.env
ns=kubeloop-images-test
log() { printf '[verify %s] %s\n' "$(date +%T)" "$*" >&2; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(kubeloop trainer mlflow)

own=""
sock=/run/containerd/containerd.sock
if ! ctr --address "$sock" version >/dev/null 2>&1; then
  own=/run/kubeloop-images-containerd
  sock=$own/containerd.sock
  root="${KUBELOOP_CONTAINERS_STORE:-$HOME/.cache/kubeloop/containers}/verify-containerd"
  mkdir -p "$own" "$root"
  cat >"$own/config.toml" <<EOF
version = 2
root = "$root"
state = "$own/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$own/containerd.sock.ttrpc"
[debug]
  address = "$own/debug.sock"
EOF
  log "starting a private containerd ($sock)"
  containerd --config "$own/config.toml" >"$own/containerd.log" 2>&1 &
  echo $! >"$own/pid"
  for _ in $(seq 50); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.2; done
fi
C=(ctr --address "$sock" -n "$ns")
cleanup() {
  "${C[@]}" tasks ls -q 2>/dev/null | xargs -r -n1 "${C[@]}" tasks kill -s KILL >/dev/null 2>&1 || true
  "${C[@]}" containers ls -q 2>/dev/null | xargs -r "${C[@]}" containers rm >/dev/null 2>&1 || true
  "${C[@]}" images ls -q 2>/dev/null | xargs -r "${C[@]}" images rm >/dev/null 2>&1 || true
  "${C[@]}" content ls -q 2>/dev/null | xargs -r "${C[@]}" content rm >/dev/null 2>&1 || true
  ctr --address "$sock" namespaces rm "$ns" >/dev/null 2>&1 || true
  if [ -n "$own" ] && [ -f "$own/pid" ]; then
    kill "$(cat "$own/pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$own/pid")" 2>/dev/null || break; sleep 0.2; done
    rm -f "$own/pid"
    # a throwaway store: drop it whole rather than wait for containerd's garbage collector
    mountpoint -q "$root" 2>/dev/null || { grep -q " $root/" /proc/mounts || rm -rf "$root"; }
  fi
}
trap cleanup EXIT

fails=0
n=0
# run IMAGE CHECK-NAME CMD...: read-only root, tmpfs /tmp, the image's own user and entrypoint override
run() {
  local image=$1 what=$2; shift 2
  n=$((n + 1))
  local id="verify-$n-$$" t=$SECONDS out
  if out=$("${C[@]}" run --rm --read-only --net-host \
      --mount type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777:size=256m \
      "$image" "$id" "$@" 2>&1); then
    log "ok   $what ($((SECONDS - t)) s): $(echo "$out" | tail -1 | cut -c1-120)"
  else
    log "FAIL $what: $(echo "$out" | tail -15)"
    fails=$((fails + 1))
  fi
}

for name in "${names[@]}"; do
  up="$(echo "$name" | tr a-z A-Z)"
  ref="$(eval echo "\$${up}_IMAGE")" archive="$(eval echo "\$${up}_ARCHIVE")"
  t=$SECONDS
  "${C[@]}" images import "$archive" >/dev/null
  log "$name: imported $archive in $((SECONDS - t)) s"
  uid_check='import os; assert os.getuid() == 65532, os.getuid(); open("/tmp/w", "w").write("x")
try:
    open("/opt/w", "w")
except OSError as e:
    print("uid", os.getuid(), "root read-only:", e.strerror)
else:
    raise SystemExit("root filesystem is writable")'
  case $name in
    kubeloop)
      run "$ref" "kubeloop: uid 65532, read-only root" python -c "$uid_check"
      run "$ref" "kubeloop --help" kubeloop --help
      run "$ref" "kubeloop serve --help" kubeloop serve --help
      run "$ref" "kubeloop drift check --help" kubeloop drift check --help
      run "$ref" "kubeloop operator --help" kubeloop operator --help
      run "$ref" "kubeloop imports" python -c 'import kubeloop_serving, kubeloop_drift, kubeloop_operator, onnxruntime, pyarrow, s3fs, mlflow
import kubeloop_serving.app, kubeloop_operator.handlers, kubeloop_drift.check, kubeloop.registry
from mlflow import MlflowClient
print("imports ok, mlflow", mlflow.__version__)'
      ;;
    trainer)
      run "$ref" "trainer: uid 65532, read-only root" python -c "$uid_check"
      run "$ref" "trainer imports" python -c 'import torch, torch.distributed as d; assert d.is_gloo_available(); import sklearn, skl2onnx, kubeloop_trainer
import kubeloop_trainer.cli, kubeloop_trainer.tracking, mlflow.onnx, optuna, s3fs
print("torch", torch.__version__, "gloo", d.is_gloo_available())'
      run "$ref" "kubeloop train --help" kubeloop train --help
      run "$ref" "torchrun 2 procs gloo all_reduce" sh -c 'cat >/tmp/ddp.py <<EOF
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(4) * (dist.get_rank() + 1)
dist.all_reduce(t)
assert t.tolist() == [3.0] * 4, t
if dist.get_rank() == 0:
    print("all_reduce ok, world", dist.get_world_size())
dist.destroy_process_group()
EOF
torchrun --standalone --nproc_per_node=2 /tmp/ddp.py'
      ;;
    mlflow)
      run "$ref" "mlflow: uid 65532, read-only root" python -c "$uid_check"
      run "$ref" "mlflow server --help" mlflow server --help
      run "$ref" "mlflow server + /health (sqlite on tmpfs)" sh -c '
mlflow server --host 127.0.0.1 --port 25731 --workers 1 --backend-store-uri sqlite:////tmp/mlflow.db \
  --serve-artifacts --artifacts-destination /tmp/artifacts >/tmp/server.log 2>&1 &
pid=$!
for i in $(seq 120); do
  python -c "import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:25731/health\").read().decode())" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { tail -20 /tmp/server.log; exit 1; }
  sleep 1
done
python - <<EOF || { tail -20 /tmp/server.log; exit 1; }
import mlflow
mlflow.set_tracking_uri("http://127.0.0.1:25731")
with mlflow.start_run() as run:
    mlflow.log_metric("m", 1.0)
    mlflow.log_text("hello", "a.txt")
print("run", run.info.run_id, "logged with an artifact")
EOF
kill $pid; wait $pid 2>/dev/null; true'
      run "$ref" "mlflow imports boto3, psycopg" python -c 'import boto3, psycopg, sqlalchemy; print("boto3", boto3.__version__, "psycopg", psycopg.__version__)'
      ;;
  esac
done
if [ "$fails" -gt 0 ]; then log "$fails of $n checks failed"; exit 1; fi
log "all $n checks passed"
