"""Which cluster `make demo` uses, and the image overrides for a cluster that is not this machine's node."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.target import Pushed, Target, TargetError, choose, helm_set_args, json_objects, s3_manifests
from tests.unit.chart.helm import CHART, helm, operator_env

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
REGISTRY = "127.0.0.1:5000"  # a port in the registry's name: the tag is only what follows the last colon
PUSHED = Pushed(
    kubeloop=f"{REGISTRY}/kubeloop:0.1.0-abc1234",
    trainer=f"{REGISTRY}/trainer:0.1.0-abc1234-dirty-0f1e2d3c",
    mlflow=f"{REGISTRY}/mlflow:0.1.0-abc1234",
    prometheus=f"{REGISTRY}/prometheus:v3.5.1",
    seaweedfs=f"{REGISTRY}/seaweedfs:v0.0.0-20261109003541-7506e5f91cd6",
)


class Reach:
    """What `kubectl version` would answer for each KUBECONFIG value, and what was asked."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, kubeconfig: str) -> bool:
        self.asked.append(kubeconfig)
        return self.answer


@pytest.fixture
def node(tmp_path: Path) -> dict[str, str]:
    """An environment whose local node keeps its admin kubeconfig under tmp_path/node."""
    (tmp_path / "node").mkdir()
    (tmp_path / "node/admin.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    (tmp_path / "home").mkdir()
    return {"KUBELET_WORKDIR": str(tmp_path / "node")}


def kubeconfig(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def test_no_kubeconfig_is_the_local_node(node: dict[str, str], tmp_path: Path) -> None:
    reach = Reach(True)
    target = choose(node, tmp_path / "home", reach)
    assert (target.mode, target.kubeconfig) == ("local", None)
    assert "no KUBECONFIG" in target.reason
    assert reach.asked == []


def test_the_local_nodes_own_kubeconfig_is_the_local_node(node: dict[str, str], tmp_path: Path) -> None:
    link = tmp_path / "link.kubeconfig"
    link.symlink_to(tmp_path / "node/admin.kubeconfig")  # the same file under another name
    reach = Reach(True)
    for value in (f"{tmp_path}/node/admin.kubeconfig", str(link)):
        target = choose({**node, "KUBECONFIG": value}, tmp_path / "home", reach)
        assert target.mode == "local", value
        assert "this machine's node" in target.reason
    assert reach.asked == [], "the local node's kubeconfig needs no probe"


def test_a_reachable_kubeconfig_is_used(node: dict[str, str], tmp_path: Path) -> None:
    other = kubeconfig(tmp_path / "team.kubeconfig")
    reach = Reach(True)
    target = choose({**node, "KUBECONFIG": str(other)}, tmp_path / "home", reach)
    assert target == Target("existing", str(other), "it answers kubectl version")
    assert reach.asked == [str(other)]
    assert target.describe() == f"the cluster of KUBECONFIG={other} (it answers kubectl version)"


def test_the_default_kubeconfig_counts_when_kubeconfig_is_unset(node: dict[str, str], tmp_path: Path) -> None:
    default = kubeconfig(tmp_path / "home/.kube/config")
    target = choose(node, tmp_path / "home", Reach(True))
    assert (target.mode, target.kubeconfig) == ("existing", str(default))


def test_a_kubeconfig_that_reaches_nothing_falls_back_to_the_local_node(
    node: dict[str, str], tmp_path: Path
) -> None:
    other = kubeconfig(tmp_path / "team.kubeconfig")
    target = choose({**node, "KUBECONFIG": str(other)}, tmp_path / "home", Reach(False))
    assert target.mode == "local"
    assert target.reason == f"KUBECONFIG={other} reaches no cluster"


def test_a_list_with_another_file_than_the_nodes_is_another_cluster(
    node: dict[str, str], tmp_path: Path
) -> None:
    other = kubeconfig(tmp_path / "team.kubeconfig")
    value = f"{tmp_path}/node/admin.kubeconfig{os.pathsep}{other}"
    target = choose({**node, "KUBECONFIG": value}, tmp_path / "home", Reach(True))
    assert (target.mode, target.kubeconfig) == ("existing", value)


def test_kubeloop_cluster_forces_the_choice(node: dict[str, str], tmp_path: Path) -> None:
    other = kubeconfig(tmp_path / "team.kubeconfig")
    reach = Reach(True)
    local = choose({**node, "KUBECONFIG": str(other), "KUBELOOP_CLUSTER": "local"}, tmp_path / "home", reach)
    assert (local.mode, local.reason) == ("local", "KUBELOOP_CLUSTER=local")
    assert reach.asked == []
    # The stand-in for a real cluster: the local node, used as any cluster is (images from a registry).
    mine = f"{tmp_path}/node/admin.kubeconfig"
    existing = choose({**node, "KUBECONFIG": mine, "KUBELOOP_CLUSTER": "existing"}, tmp_path / "home", reach)
    assert (existing.mode, existing.kubeconfig) == ("existing", mine)


@pytest.mark.parametrize(
    ("env", "reachable", "named"),
    [
        ({"KUBELOOP_CLUSTER": "remote"}, True, "KUBELOOP_CLUSTER='remote'"),
        ({"KUBELOOP_CLUSTER": "existing"}, True, "needs KUBECONFIG"),
        ({"KUBELOOP_CLUSTER": "existing", "KUBECONFIG": "/nonexistent/kubeconfig"}, False, "does not reach"),
    ],
)
def test_a_forced_choice_that_cannot_be_had_is_refused(
    node: dict[str, str], tmp_path: Path, env: dict[str, str], reachable: bool, named: str
) -> None:
    with pytest.raises(TargetError, match=named):
        choose({**node, **env}, tmp_path / "home", Reach(reachable))


# --- image overrides ---


def test_pushed_references_come_from_the_push_scripts_env_file() -> None:
    env = {f"{n.upper()}_IMAGE": ref for n, ref in vars(PUSHED).items()}
    assert Pushed.from_env(env) == PUSHED
    del env["SEAWEEDFS_IMAGE"]
    with pytest.raises(TargetError, match="SEAWEEDFS_IMAGE"):
        Pushed.from_env(env)


def test_the_chart_runs_only_pushed_images() -> None:
    """helm renders the local values plus the overrides: every container, and every image the operator
    renders (servers, drift checks, trainer), comes from the registry."""
    text = helm(
        "template", "kubeloop", str(CHART), "--namespace", "kubeloop-system",
        "-f", str(ROOT / "hack/local-values.yaml"), *helm_set_args(PUSHED),
    ).stdout  # fmt: skip
    manifests = [m for m in yaml.safe_load_all(text) if m]
    images = {
        c["image"]
        for m in manifests
        if m["kind"] == "Deployment"
        for c in m["spec"]["template"]["spec"]["containers"]
    }
    assert images == {PUSHED.kubeloop, PUSHED.mlflow, PUSHED.prometheus}
    env = operator_env(manifests)
    assert env["KUBELOOP_OPERATOR_TRAINER_IMAGE"] == PUSHED.trainer
    assert {env[f"KUBELOOP_OPERATOR_{k}_IMAGE"] for k in ("SERVING", "DRIFT")} <= {"", PUSHED.kubeloop}


def test_an_untagged_reference_is_refused() -> None:
    with pytest.raises(TargetError, match="without a tag"):
        helm_set_args(Pushed(*(f"{REGISTRY}/x" for _ in range(5))))


def s3_objects() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "hack/addons/s3.yaml").read_text()) if d]


def kubectl_json(objects: list[dict[str, Any]]) -> str:
    """What `kubectl create --dry-run=client -o json -f FILE` prints: each object, indented, in turn."""
    return "".join(json.dumps(o, indent=4) + "\n" for o in objects)


def test_kubectls_json_is_read_object_by_object() -> None:
    objects = s3_objects()
    assert json_objects(kubectl_json(objects)) == objects
    listed = {"apiVersion": "v1", "kind": "List", "items": objects}
    assert json_objects(json.dumps(listed)) == objects  # kubectl apply's -o json of several objects
    assert json_objects(json.dumps(objects[0])) == objects[:1]
    assert json_objects("") == []


def test_the_s3_addon_pulls_the_pushed_image_and_takes_any_cluster_ip() -> None:
    given = s3_objects()
    before = json.dumps(given)
    out = s3_manifests(given, PUSHED.seaweedfs)
    assert json.dumps(given) == before, "the input is left as it was"
    assert out["kind"] == "List"
    assert [o["kind"] for o in out["items"]] == [o["kind"] for o in given]
    containers = [
        c
        for o in out["items"]
        for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    ]
    assert len(containers) == 2  # the server and the bucket job
    assert {(c["image"], c["imagePullPolicy"]) for c in containers} == {(PUSHED.seaweedfs, "IfNotPresent")}
    service = next(o for o in out["items"] if o["kind"] == "Service")
    assert "clusterIP" not in service["spec"]
    assert service["spec"]["ports"] == next(o for o in given if o["kind"] == "Service")["spec"]["ports"]
    # Everything else as on the local node: credentials by reference, the restricted security context.
    env = {e["name"]: e for e in containers[0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kubeloop-s3"
    assert containers[0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_command_line_runs_on_the_system_python(tmp_path: Path) -> None:
    """hack/platform.sh calls the module with the system python3 (no venv there): standard library only."""
    env_file = tmp_path / "pushed.env"
    env_file.write_text("".join(f"{n.upper()}_IMAGE={ref}\n" for n, ref in vars(PUSHED).items()))
    script = str(ROOT / "tests/e2e/target.py")
    clean = {"PATH": "/usr/bin:/bin"}
    args = subprocess.run(
        ["/usr/bin/python3", "-I", script, "helm-args", str(env_file)],
        capture_output=True, text=True, check=True, env=clean,
    ).stdout.splitlines()  # fmt: skip
    assert args == helm_set_args(PUSHED)
    listed = subprocess.run(
        ["/usr/bin/python3", "-I", script, "s3-manifest", PUSHED.seaweedfs],
        input=kubectl_json(s3_objects()), capture_output=True, text=True, check=True, env=clean,
    ).stdout  # fmt: skip
    assert json.loads(listed) == s3_manifests(s3_objects(), PUSHED.seaweedfs)
    (tmp_path / "empty.env").write_text("")
    refused = subprocess.run(
        ["/usr/bin/python3", "-I", script, "helm-args", str(tmp_path / "empty.env")],
        capture_output=True, text=True, env=clean, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "pushed image references missing: KUBELOOP_IMAGE" in refused.stderr
