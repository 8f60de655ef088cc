"""Fuzz the CRD rules against the real API server: no resource may be accepted that the operator
cannot realize.

Hypothesis generates variants of valid resources with one field replaced by mostly invalid values
(names, cron schedules, quantities, tolerations, label keys, thresholds, duplicate features, ...).
Each variant goes to the API server (server-side dry-run create). A refused one is fine; an
accepted one must parse into the operator's typed model, and every child the pure renderers make
from it must be accepted by the API server too (server-side dry-run). Counts are printed.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubeloop.api.common import API_VERSION
from kubeloop.api.deployment import ModelDeploymentSpec, PayloadLogging
from kubeloop.api.drift import DriftMonitorSpec
from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator.kube import Kube, path
from kubeloop_operator.render.common import Manifest, Owner
from kubeloop_operator.render.drift import render_cronjob
from kubeloop_operator.render.retrain import render_retrain
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.render.training import render_training
from kubeloop_operator.settings import OperatorSettings
from tests.cluster.manifests import drift_monitor, model_deployment, training_job
from tests.fixtures.cluster import Cluster

pytestmark = pytest.mark.cluster
NAMESPACE = "default"
EXAMPLES_PER_KIND = 120
SPECS: dict[str, Any] = {
    "TrainingJob": TrainingJobSpec,
    "ModelDeployment": ModelDeploymentSpec,
    "DriftMonitor": DriftMonitorSpec,
}


@pytest.fixture(scope="module")
def api(crds: Cluster) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(crds.kubeconfig))
    yield client
    client.close()


def dry_run(api: ApiClient, manifest: Manifest) -> tuple[bool, str]:
    """Server-side dry-run create (strict field validation): (accepted, the API server's answer)."""
    query = [("dryRun", "All"), ("fieldValidation", "Strict")]
    try:
        stored = Kube("kubeloop-fuzz", client=api).request(
            "POST", path(manifest["kind"], NAMESPACE), manifest, query
        )
    except ApiException as error:
        return False, str(error.body)
    return True, json.dumps(stored)


# --- strategies: mostly-invalid values per field -------------------------------------------------
name_chars = st.sampled_from("abcz019-.-_A")
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=70),
    st.sampled_from(["1abc", "a.b", "a" * 64, "a" * 63, "ok-name", "-x", "x-", "UPPER"]),
)
cron_token = st.one_of(
    st.sampled_from(["*", "?", "*/0", "*/5", "0", "59", "60", "23", "24", "31", "32", "12", "13", "7", "6"]),
    st.sampled_from(["L", "W", "1#2", "MON-FRI", "FRI-MON", "JAN", "5-1", "1-5", "0-0/2", "1,,2", "00"]),
    st.text(st.sampled_from("0123456789*/,-?LW#"), min_size=1, max_size=5),
)
schedules = st.one_of(
    st.lists(cron_token, min_size=4, max_size=6).map(" ".join),
    st.sampled_from(["@hourly", "@every 1h", "@reboot", "TZ=UTC 0 * * * *", "0  * * * *"]),
)
quantities = st.one_of(
    st.integers(-(2**40), 2**40),
    st.sampled_from(["500m", "1.5", "4Gi", "-1", "0", "1e3", "1.5.2", "lots", " 1", "1Ki", "0.5m", "10E"]),
    st.text(st.sampled_from("0123456789.mkKiMGTPE-"), min_size=1, max_size=8),
)
label_keys = st.one_of(
    st.text(st.sampled_from("abAZ09-_./"), min_size=0, max_size=12),
    st.sampled_from(["kubernetes.io/os", "a/b/c", "x" * 64, "a" * 254 + "/b", "-a", "Example.com/a"]),
)
label_values = st.one_of(
    st.text(st.sampled_from("abAZ09-_./ "), max_size=10), st.sampled_from(["a" * 64, "ok", ""])
)
tolerations = st.fixed_dictionaries(
    {},
    optional={
        "key": label_keys,
        "operator": st.sampled_from(["Exists", "Equal", "In"]),
        "value": label_values,
        "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute", "Never"]),
        "tolerationSeconds": st.integers(-5, 2**40),
    },
)
tests = st.lists(
    st.fixed_dictionaries(
        {
            "feature": st.sampled_from(["age", "income", "*"]),
            "test": st.sampled_from(["ks", "chi2", "psi", "jensenshannon", "wasserstein"]),
        },
        optional={"threshold": st.floats(-1, 3, allow_nan=False)},
    ),
    max_size=3,
)
env_names = st.text(st.sampled_from("AZaz09_.- =/"), min_size=1, max_size=8)
ints = st.one_of(st.integers(-5, 5), st.integers(2**31 - 2, 2**31 + 2), st.integers(-(2**63), 2**63 - 1))

COMMON: dict[str, st.SearchStrategy[Any]] = {
    "metadata.name": names,
    "spec.resources.cpu": quantities,
    "spec.resources.memory": quantities,
    "spec.resources.gpus": ints,
    "spec.resources.gpuResourceName": st.one_of(
        label_keys, st.sampled_from(["kubernetes.io/gpu", "amd.com/gpu"])
    ),
    "spec.nodeSelector": st.dictionaries(label_keys, label_values, max_size=2),
    "spec.tolerations": st.lists(tolerations, min_size=1, max_size=2),
    "spec.image": st.sampled_from(["repo/img:1", " img", "img ", "a b", "x"]),
}
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "TrainingJob": {
        **COMMON,
        "spec.workers": ints,
        "spec.runPolicy.ttlSecondsAfterFinished": ints,
        "spec.runPolicy.activeDeadlineSeconds": ints,
        "spec.env": st.lists(st.fixed_dictionaries({"name": env_names, "value": st.just("v")}), max_size=2),
    },
    "ModelDeployment": {
        **COMMON,
        "spec.replicas.min": ints,
        "spec.env": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.just("A"),
                    "valueFrom": st.fixed_dictionaries(
                        {"secretKeyRef": st.fixed_dictionaries({"name": st.just("s"), "key": env_names})}
                    ),
                }
            ),
            max_size=1,
        ),
    },
    "DriftMonitor": {
        **COMMON,
        "spec.schedule": schedules,
        "spec.tests": tests,
        "spec.features": st.lists(st.sampled_from(["age", "income"]), max_size=3),
        "spec.window.duration": st.sampled_from(["0m", "24h", "99999999d", "7d", "1 week"]),
        "spec.action": st.fixed_dictionaries(
            {
                "type": st.just("Retrain"),
                "trainingJobTemplate": st.fixed_dictionaries(
                    {
                        "labels": st.dictionaries(label_keys, label_values, max_size=2),
                        "spec": st.just({"command": ["train"]}),
                    }
                ),
            }
        ),
    },
}
BASES: dict[str, Callable[[], Manifest]] = {
    "TrainingJob": training_job,
    "ModelDeployment": model_deployment,
    "DriftMonitor": drift_monitor,
}


def variant(kind: str, field: str, value: Any) -> Manifest:
    manifest = copy.deepcopy(BASES[kind]())
    node = manifest
    *parents, leaf = field.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    if field == "spec.window.duration":
        manifest["spec"]["window"] = {"duration": value}
    return manifest


def children(kind: str, stored: Manifest) -> list[Manifest]:
    """What the operator would create for an accepted resource (its model must accept it too)."""
    spec = SPECS[kind].model_validate(stored["spec"])
    owner = Owner(
        kind, API_VERSION, stored["metadata"]["name"], NAMESPACE, "00000000-0000-0000-0000-000000000014"
    )
    settings = OperatorSettings()
    if kind == "TrainingJob":
        return render_training(owner, spec, settings)
    if kind == "ModelDeployment":
        return render_serving(owner, spec, settings)
    out = [render_cronjob(owner, spec, PayloadLogging(sink_uri="s3://payloads"), settings)]
    template = spec.action.training_job_template
    if template is not None:
        out.append(render_retrain(owner, template, f"{owner.name}-check-29000000"))
    return out


@pytest.mark.parametrize("kind", list(FIELDS))
def test_no_accepted_resource_is_unrealizable(api: ApiClient, kind: str) -> None:
    counts: Counter[str] = Counter()
    per_field: Counter[str] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_KIND,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.sampled_from(sorted(FIELDS[kind])).flatmap(lambda f: st.tuples(st.just(f), FIELDS[kind][f])))
    def check(case: tuple[str, Any]) -> None:
        field, value = case
        per_field[field] += 1
        accepted, answer = dry_run(api, variant(kind, field, value))
        if not accepted:
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        stored = json.loads(answer)
        try:
            rendered = children(kind, stored)
        except Exception as error:  # the operator's model refuses what the API server stored
            failures.append(f"{field}={value!r}: accepted by the API server, refused by the model: {error}")
            return
        for child in rendered:
            ok, why = dry_run(api, child)
            if not ok:
                failures.append(f"{field}={value!r}: child {child['kind']} refused: {why[:300]}")
                return
        counts["realizable"] += 1

    check()
    print(
        f"\n{kind}: {sum(per_field.values())} variants over {len(per_field)} fields: "
        f"{counts['refused']} refused, {counts['accepted']} accepted, "
        f"{counts['realizable']} of them realizable"
    )
    assert not failures, "\n".join(failures[:10])
    assert counts["accepted"] == counts["realizable"]
