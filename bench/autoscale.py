"""The autoscaler's replica counts over time under a load step, CPU vs in-flight metric, on the real node.

    .venv/bin/python -m bench.autoscale [--concurrency 16] [--load-seconds 180] [--settle-seconds 300]

It brings the platform up with prometheus-adapter (hack/platform.sh up with KUBELOOP_PROMETHEUS_ADAPTER=1:
idempotent; the first time it builds the images and the node; `make platform-down` after), then runs the
same load step twice in a namespace of its own, one ModelDeployment at a time, identical but for
`spec.autoscaling`: the peer is the default CPU HPA (targetCpuUtilization), against in-flight requests per
pod (metric inFlight, targetInFlight). Both scale down after 15 s of stabilization, from 1 to 4 replicas
of 250m CPU requests. The step: 15 s idle, `concurrency` clients sending back to back for `load-seconds`,
then idle until the HPA is back at one replica (at most `settle-seconds`); the HPA is read every 5 s.

Prints JSON: per metric the timeline (t, phase, current and desired replicas, the metric's value: CPU %
of requests or average requests in flight), seconds from the load's start to the first scale-up and to
the peak, the peak, seconds from the load's end back to one replica, what the clients saw (requests,
failures, p50/p99, rps); and the in-flight/CPU ratios of those times.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

from tests.e2e.autoscale import ensure_adapter, load_step, model_deployment, ready, upload_model
from tests.e2e.platform import ROOT, Platform, namespace

STABILIZATION_SECONDS = 15
METRICS: dict[str, dict[str, Any]] = {
    "cpu": {"metric": "cpu", "targetCpuUtilization": 70},
    "inFlight": {"metric": "inFlight", "targetInFlight": 2},
}


def platform_up() -> Platform:
    """The local node with prometheus-adapter (idempotent); its progress goes to .run/bench/platform.log."""
    os.environ["KUBELOOP_PROMETHEUS_ADAPTER"] = "1"  # hack/platform.sh up: the adapter too
    log = ROOT / ".run/bench/platform.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return Platform.up(log)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def run(platform: Platform, concurrency: int, load_seconds: float, settle_seconds: float) -> dict[str, Any]:
    ensure_adapter(platform)
    results: dict[str, Any] = {}
    with namespace(platform, f"kl-bench-autoscale-{uuid.uuid4().hex[:6]}") as ns:
        uri, body = upload_model(platform, ns)
        for label, autoscaling in METRICS.items():
            name = f"cnn-{label.lower()}"
            scaling = autoscaling | {"scaleDownStabilizationSeconds": STABILIZATION_SECONDS}
            platform.apply(model_deployment(name, uri, scaling), ns)
            platform.wait_status("modeldeployment", name, ns, ready, 300, f"{name} Ready")
            results[label] = {"autoscaling": scaling} | load_step(
                platform, ns, name, body, concurrency, load_seconds, settle_seconds
            )
            # The next run starts on an idle node: these servers gone first.
            platform.kubectl.run("delete", "modeldeployment", name, "-n", ns, "--wait=true")
            selector = f"kubeloop.io/modeldeployment={name}"
            platform.kubectl.run("wait", "--for=delete", "pod", "-l", selector, "-n", ns, "--timeout=180s")
    cpu, in_flight = results["cpu"], results["inFlight"]
    return {
        "benchmark": "autoscale",
        "peer": "cpu (the default HPA metric)",
        "model": "small CNN (bench/serving_models.py), 250m CPU requests per server, 1-4 replicas",
        "concurrency": concurrency,
        "results": results,
        "in_flight_vs_cpu": {
            key: ratio(in_flight[key], cpu[key])
            for key in (
                "seconds_to_first_scale_up",
                "seconds_to_peak",
                "peak_replicas",
                "seconds_to_scale_back",
            )
        },
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load-seconds", type=float, default=180)
    parser.add_argument("--settle-seconds", type=float, default=300)
    options = parser.parse_args()
    report = run(platform_up(), options.concurrency, options.load_seconds, options.settle_seconds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
