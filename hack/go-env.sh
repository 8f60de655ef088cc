# Sourced by every hack/ script that builds Go: kubeloop's Go build and module caches live under
# ~/.cache/kubeloop/go, apart from the user's own, so that hack/trim-caches.sh may drop them once the
# binaries they made are cached by version (together ~18 GB after a cold build; the disk is shared).
export GOCACHE="${KUBELOOP_GOCACHE:-${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/go/build}"
export GOMODCACHE="${KUBELOOP_GOMODCACHE:-${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/go/mod}"

# Every kubeloop go command holds this lock, shared, while it runs; hack/trim-caches.sh drops the caches
# only when it can take it exclusively. (A process check would also see other go processes: the
# user's, or a build beside a test whose trim-caches runs on a cache of its own.)
KUBELOOP_GO_LOCK="${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/.go-caches.lock"
go() {
  mkdir -p "$(dirname "$KUBELOOP_GO_LOCK")"
  (flock -s 6 && command go "$@") 6>>"$KUBELOOP_GO_LOCK"
}
