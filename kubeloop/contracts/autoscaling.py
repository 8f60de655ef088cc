"""Autoscaling on in-flight requests: the series the server exports is the custom metric the HPA reads.

The chain, three processes and one name:

- the model server exports the gauge ``kubeloop_serving_inflight_requests`` (requests being decoded,
  queued for a batch, run or encoded right now; serving/kubeloop_serving/metrics.py);
- Prometheus scrapes it per pod, labelled ``namespace`` and ``pod`` (the chart's scrape configuration,
  or a PodMonitor/ServiceMonitor);
- prometheus-adapter (the chart's ``prometheusAdapter.enabled``) serves it under the same name as a
  pods metric of ``custom.metrics.k8s.io/v1beta1``, averaged over a short window;
- the HorizontalPodAutoscaler the operator renders for ``autoscaling.metric: inFlight`` asks for that
  pods metric with an ``AverageValue`` target: desired replicas = ceil(sum over pods / target).
"""

from __future__ import annotations

from decimal import Decimal

INFLIGHT_METRIC = "kubeloop_serving_inflight_requests"
CUSTOM_METRICS_API = "custom.metrics.k8s.io/v1beta1"


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as they are, others in thousandths (2.5 -> 2500m)."""
    milli = Decimal(str(value)) * 1000
    if milli % 1000 == 0:
        return str(int(milli // 1000))
    return f"{int(milli.to_integral_value())}m"


def pods_metric_path(namespace: str, metric: str = INFLIGHT_METRIC) -> str:
    """What `kubectl get --raw` reads to see the value of every pod in a namespace, as the HPA does."""
    return f"/apis/{CUSTOM_METRICS_API}/namespaces/{namespace}/pods/*/{metric}"
