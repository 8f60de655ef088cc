# kubeloop: `make demo` runs the loop locally, `make test` runs every test tier.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN := .run
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml hack/install-python.sh hack/constraints.txt trainer/install-torch-cpu.sh
	bash hack/install-python.sh $(VENV)
	touch $@

.PHONY: venv
venv: $(VENV)/.installed  ## Python environment with every extra (.venv)

CARGO ?= $(shell command -v cargo 2>/dev/null || echo $$HOME/.cargo/bin/cargo)

.PHONY: dataplane
dataplane:  ## build the native data plane (dataplane/: kubeloop-dataplane, Rust) with cargo
	cd dataplane && $(CARGO) build --release --locked --quiet

.PHONY: dataplane-test
dataplane-test: dataplane  ## the native data plane's own (Rust) tests; its tests against the Python server are in the unit tier
	cd dataplane && $(CARGO) test --release --locked --quiet

.PHONY: k8s-bins
k8s-bins:  ## build (or find cached) kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm
	@hack/build-k8s.sh >/dev/null

.PHONY: helm-bin
helm-bin:  ## build (or find cached) the pinned helm alone (what the unit tier needs)
	@hack/build-helm.sh >/dev/null

.PHONY: prometheus-bin
prometheus-bin:  ## build (or find cached) Prometheus + promtool (the chart's Prometheus; the unit tier's promtool)
	@hack/build-addons.sh prometheus >/dev/null

.PHONY: system-deps
system-deps:  ## Debian's prometheus/promtool and kubeconform (idempotent, quiet when present)
	@hack/install-system.sh

.PHONY: crds
crds: venv helm-bin  ## regenerate crds/, the chart's crds/, manifests/install and manifests/alerts
	$(VENV)/bin/kubeloop crds crds charts/kubeloop/crds
	hack/render-install.sh
	hack/render-alerts.sh

GRPC_DIR := serving/kubeloop_serving/oip_grpc
.PHONY: grpc-stubs
grpc-stubs: venv  ## regenerate the OIP v2 gRPC stubs (checked in) from $(GRPC_DIR)/grpc_predict_v2.proto
	$(PY) -m grpc_tools.protoc -I serving --python_out=serving --pyi_out=serving --grpc_python_out=serving \
	  $(GRPC_DIR)/grpc_predict_v2.proto
	@# a pool of its own: tritonclient and KServe register the same inference.* names in the default one
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' $(GRPC_DIR)/grpc_predict_v2_pb2.py

.PHONY: lint
lint: venv  ## ruff and mypy --strict; rustfmt and clippy for dataplane/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd dataplane && $(CARGO) fmt --check && $(CARGO) clippy --release --locked --quiet --all-targets -- -D warnings

.PHONY: cluster-up
cluster-up: k8s-bins  ## start the local control plane; writes .run/kubeconfig
	@hack/cluster.sh up >/dev/null && echo "cluster up: export KUBECONFIG=$$PWD/$(RUN)/kubeconfig"

.PHONY: cluster-down
cluster-down:  ## stop and delete the local control plane
	@hack/cluster.sh down

NODE_DEPS := { command -v containerd >/dev/null && command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ]; } \
  || hack/kubelet/node.sh deps >/dev/null
.PHONY: node-deps
node-deps:  ## containerd, runc, CNI plugins and iptables from Debian (idempotent, quiet when present)
	@$(NODE_DEPS)

.PHONY: e2e-deps
e2e-deps: k8s-bins node-deps  ## what the real node needs: images, kubelet, kube-proxy, CoreDNS, metrics-server, S3
	hack/e2e-deps.sh

.PHONY: e2e-deps-start
e2e-deps-start: k8s-bins node-deps  ## start hack/e2e-deps.sh in the background; the e2e tier (run last) waits for it
	@hack/e2e-deps.sh start

.PHONY: trim-caches
trim-caches:  ## drop kubeloop's Go build caches (the binaries are cached by version); report free disk
	@hack/trim-caches.sh

.PHONY: images-start
images-start:  ## start building the images in the background (hack/e2e-deps.sh waits for that build)
	@hack/images.sh start

.PHONY: test
test: trim-caches images-start venv k8s-bins prometheus-bin system-deps lint dataplane-test e2e-deps-start  ## lint, then every tier: unit, cluster (kwok) and e2e (real pods)
	$(VENV)/bin/pytest --fail-on-skip $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: venv k8s-bins prometheus-bin system-deps dataplane-test  ## unit and cluster tiers only (no images, no real node)
	$(VENV)/bin/pytest -m "not e2e" --fail-on-skip $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: venv e2e-deps  ## the e2e tier only: kubeloop installed with Helm on a real node
	$(VENV)/bin/pytest -m e2e --fail-on-skip $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv helm-bin prometheus-bin system-deps dataplane-test  ## unit tier only (seconds, no cluster)
	$(VENV)/bin/pytest -m unit $(PYTEST_ARGS)

.PHONY: demo
demo: venv k8s-bins  ## the loop on a real node (or the cluster KUBECONFIG reaches): train, serve, drift, retrain, roll out
	@# What the local node needs (node-deps, e2e-deps); on an existing cluster hack/platform.sh builds what it pushes.
	@target=$$($(PY) hack/demo.py --target) && { [ "$$target" = existing ] || { $(NODE_DEPS) && hack/e2e-deps.sh; }; }
	$(PY) hack/demo.py

.PHONY: registry-up
registry-up:  ## a plain-HTTP OCI registry on 127.0.0.1:5000 (distribution, built from the Go module proxy)
	@hack/registry.sh up

.PHONY: registry-down
registry-down:  ## stop it (its storage under ~/.cache/kubeloop/registry stays)
	@hack/registry.sh down

.PHONY: bench-operator
bench-operator: venv cluster-up  ## operator vs direct API creation, N=300 ModelDeployments
	eval "$$(hack/cluster.sh up)" && export KUBECONFIG PATH \
	  && kubectl apply --server-side --force-conflicts -f crds/ >/dev/null \
	  && kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null \
	  && $(PY) -m bench.operator_bench

.PHONY: bench-serving
bench-serving: venv  ## kubeloop serve vs KServe and MLServer (own venvs), with the HTTP and onnxruntime floors, same cores and load generator
	$(PY) -m bench.serving

.PHONY: bench-grpc
bench-grpc: venv  ## OIP v2 gRPC vs REST on kubeloop serve (MLP, CNN), KServe's gRPC and the bare HTTP and gRPC floors, same cores and load
	$(PY) -m bench.serving_grpc

.PHONY: bench-http-stack
bench-http-stack: venv  ## uvicorn + httptools vs granian (Rust HTTP): the bare HTTP floor and kubeloop's app, same core and load
	$(PY) -m bench.serving_http_stack

.PHONY: bench-routing
bench-routing: venv  ## the canary split's cost: canary through the stable server's router vs called directly
	$(PY) -m bench.serving_routing

.PHONY: bench-performance
bench-performance: venv  ## kubeloop's CBPE vs NannyML 0.13.1's (own venv), same shifted data and chunks
	$(PY) -m bench.performance_estimation

.PHONY: bench-progress
bench-progress: venv  ## reading a TrainingJob's progress (runs/search past 200 trial runs) vs one runs/get
	$(PY) -m bench.progress

.PHONY: bench-drift
bench-drift: venv  ## kubeloop drift check vs Evidently's data-drift preset, 1M x 20 rows
	$(PY) -m bench.drift

.PHONY: bench-hpo
bench-hpo: venv  ## parallel trials: 16 trials with 1 vs 4 trial workers sharing one study in PostgreSQL
	$(PY) -m bench.hpo

.PHONY: bench-explain
bench-explain: venv  ## explain latency per row: kubeloop TreeSHAP (from ONNX), permutation SHAP, LIME vs shap.TreeExplainer
	$(PY) -m bench.explain

.PHONY: bench-data
bench-data: venv  ## reading a DVC-tracked dataset: the trainer's versioned source vs dvc.api.read vs a plain path
	$(PY) -m bench.data_sources

.PHONY: bench-autoscale
bench-autoscale: venv  ## HPA replicas over time under a load step on the real node: in-flight metric vs CPU
	$(PY) -m bench.autoscale

.PHONY: bench-resume
bench-resume: venv  ## resumable gangs: an MLP fit with epoch checkpoints in MLflow vs without
	$(PY) -m bench.resume

.PHONY: images
images:  ## container images kubeloop, trainer, mlflow (buildah, local base): archives + .run/images.env
	@hack/images.sh

.PHONY: base-image
base-image:  ## the local Debian bookworm + Python 3.11 base image archive (debootstrap, cached)
	@hack/base-image.sh >/dev/null

.PHONY: platform-down
platform-down:  ## stop and delete the real node (and everything on it)
	@hack/platform.sh down

.PHONY: clean
clean: cluster-down platform-down  ## remove the venv and run state
	rm -rf $(VENV) $(RUN)
