# Sourced by every hack/ script that builds Go: kubeloop's Go build and module caches live under
# ~/.cache/kubeloop/go, apart from the user's own, so that hack/trim-caches.sh may drop them once the
# binaries they made are cached by version (together ~18 GB after a cold build; the disk is shared).
export GOCACHE="${KUBELOOP_GOCACHE:-${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/go/build}"
export GOMODCACHE="${KUBELOOP_GOMODCACHE:-${KUBELOOP_CACHE:-$HOME/.cache/kubeloop}/go/mod}"
