"""Pods that cannot run, on the real node: the TrainingJob or ModelDeployment condition says why, in the
scheduler's or the kubelet's words, instead of Pending / RollingOut with nothing more.

Four ways users get stuck: a Secret the spec names that does not exist, a GPU the node does not have,
a model the server cannot load (a crash loop: its last log lines say why), an image that cannot be
pulled (a server's, a drift check's). All are applied at once, then each is waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.loop import Loop, check_now
from tests.e2e.platform import Platform
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def condition_says(type_: str, reasons: set[str], *words: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        condition: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c["type"] == type_), {}
        )
        return condition.get("reason") in reasons and all(w in condition.get("message", "") for w in words)

    return check


def table_shows(
    platform: Platform, kind: str, name: str, namespace: str, reasons: set[str]
) -> Callable[[], bool]:
    """Whether ``kubectl get KIND NAME`` (the API server's table) shows one of ``reasons`` as REASON."""

    def check() -> bool:
        header, row = platform.kubectl.run("get", kind, name, "-n", namespace).stdout.splitlines()[:2]
        cells = dict(zip(header.split(), row.split(), strict=False))  # no empty cell up to REASON
        return cells["REASON"] in reasons

    return check


def named(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return {**manifest, "metadata": {"name": name}}


def test_each_stuck_pod_is_named_with_its_reason_in_the_condition(
    platform: Platform, e2e_namespace: str
) -> None:
    loop = Loop(e2e_namespace)
    dvc = {
        "repo": "http://git.example.invalid/data.git",
        "path": "train.parquet",
        "secretRef": {"name": "nope"},
    }
    no_secret = loop.training_job("no-secret", dataset={"dvc": dvc, "targetColumn": "churned"})
    no_gpu = loop.training_job("no-gpu", resources={"cpu": "100m", "memory": "512Mi", "gpus": 1})
    missing = f"s3://kubeloop/models/{e2e_namespace}/absent/model.onnx"
    bad_model = named(loop.model_deployment(missing), "bad-model")
    absent = "localhost/kubeloop/absent:v1"
    bad_image = named(loop.model_deployment(missing, image=absent), "bad-image")
    monitor = loop.drift_monitor()
    bad_check = named(monitor, "bad-check")
    bad_check["spec"] = {**monitor["spec"], "target": {"modelDeployment": "bad-model"}, "image": absent}
    for manifest in (no_secret, no_gpu, bad_model, bad_image, bad_check):
        platform.apply(manifest, e2e_namespace)
    check_now(platform, e2e_namespace, "bad-check", "bad-check-now")

    pulls = {"ErrImagePull", "ImagePullBackOff"}  # the kubelet alternates between the two
    waits: list[tuple[str, str, str, set[str], tuple[str, ...]]] = [
        ("trainingjob", "no-secret", "Succeeded", {"CreateContainerConfigError"}, ('secret "nope"',)),
        ("trainingjob", "no-gpu", "Succeeded", {"Unschedulable"}, ("nvidia.com/gpu",)),
        # the server's last log line is why it exited
        ("modeldeployment", "bad-model", "Ready", {"CrashLoopBackOff"}, ("exiting: ", "absent/model.onnx")),
        ("modeldeployment", "bad-image", "Ready", pulls, ("absent:v1",)),
        # the check Job's pod: no other check starts while it waits
        ("driftmonitor", "bad-check", "Ready", pulls, ("a check cannot run", "absent:v1")),
    ]
    for kind, name, type_, reasons, words in waits:
        check = condition_says(type_, reasons, *words)
        obj = platform.wait_status(kind, name, e2e_namespace, check, 300, f"{kind} {name} says why")
        condition = next(c for c in obj["status"]["conditions"] if c["type"] == type_)
        print(f"{kind} {name}: {condition['reason']}: {condition['message']}")
        # kubectl get shows it, as a pod's STATUS (a crash loop's reason may step aside as it restarts)
        wait_for(
            table_shows(platform, kind, name, e2e_namespace, reasons), 60, what=f"{kind} {name}'s REASON"
        )
        if kind == "trainingjob":
            assert obj["status"]["phase"] == "Pending", obj["status"]
