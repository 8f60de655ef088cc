"""hack/e2e-deps.sh start/wait, and the tier order they rely on: `make test` builds the node's
dependencies in the background while the unit and cluster tiers run, and the e2e tier, which runs last,
waits for that build (or builds in the foreground when none finished).

The script runs from a copy of the repository's layout whose builders (hack/images.sh,
hack/build-addons.sh, hack/kubelet/node.sh, hack/trim-caches.sh) are scripts that record their runs
and take as long, or fail, as each test says: the real builds take minutes to tens of minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
ALL_RUNS = ["addon prometheus-adapter", "images", "node build", "trim"]  # sorted


def layout(tmp_path: Path, node_build: str = "sleep 0") -> Path:
    """A repository copy whose node build runs ``node_build``; every builder appends to runs.log."""
    (tmp_path / "hack/kubelet").mkdir(parents=True)
    shutil.copy(ROOT / "hack/e2e-deps.sh", tmp_path / "hack/e2e-deps.sh")
    builders = {
        "hack/build-addons.sh": 'echo "addon $1" >>runs.log',
        "hack/images.sh": "echo images >>runs.log",
        "hack/kubelet/node.sh": f'{node_build} && echo "node $1" >>runs.log',
        "hack/trim-caches.sh": "echo trim >>runs.log",
    }
    for path, body in builders.items():
        (tmp_path / path).write_text(f"#!/usr/bin/env bash\nset -e\n{body}\n")
        (tmp_path / path).chmod(0o755)
    return tmp_path


def e2e_deps(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [repo / "hack/e2e-deps.sh", *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False
    )


def runs(repo: Path) -> list[str]:
    log = repo / "runs.log"
    return log.read_text().splitlines() if log.exists() else []


def test_start_returns_at_once_and_wait_waits_for_the_build(tmp_path: Path) -> None:
    repo = layout(tmp_path, node_build="until [ -e gate ]; do sleep 0.05; done")  # builds once the gate opens
    assert e2e_deps(repo, "start").returncode == 0  # returned with the build held at the gate
    assert "node build" not in runs(repo)
    assert not (repo / ".run/e2e-deps.done").exists()

    waiting = subprocess.Popen(
        [repo / "hack/e2e-deps.sh", "wait"], cwd=repo, stderr=subprocess.PIPE, text=True
    )
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=1)  # still waiting: the build has not finished
    (repo / "gate").touch()
    _, stderr = waiting.communicate(timeout=60)

    assert waiting.returncode == 0, stderr
    assert "waiting for the background build" in stderr
    assert sorted(runs(repo)) == ALL_RUNS  # built once, not again by wait
    assert (repo / ".run/e2e-deps.done").exists()
    assert e2e_deps(repo, "wait").returncode == 0  # done: nothing to wait for or build
    assert len(runs(repo)) == len(ALL_RUNS)


def test_wait_builds_in_the_foreground_when_nothing_was_started(tmp_path: Path) -> None:
    repo = layout(tmp_path)
    waited = e2e_deps(repo, "wait")
    assert waited.returncode == 0, waited.stderr
    assert sorted(runs(repo)) == ALL_RUNS


def test_a_failed_background_build_is_shown_and_run_again_in_the_foreground(tmp_path: Path) -> None:
    repo = layout(tmp_path, node_build='[ -e fixed ] || { echo "kubelet: compile error" >&2; exit 1; }')
    assert e2e_deps(repo, "start").returncode == 0
    failed = e2e_deps(repo, "wait")
    assert failed.returncode != 0
    assert "kubelet: compile error" in failed.stderr  # the background log's tail, then the foreground's
    assert "did not finish" in failed.stderr

    (repo / "fixed").touch()  # the next wait builds again, in the foreground, and succeeds
    assert e2e_deps(repo, "wait").returncode == 0
    assert "node build" in runs(repo)


def test_the_e2e_tier_runs_last_and_the_unit_tier_first() -> None:
    files = ["tests/e2e/test_grpc.py", "tests/cluster/test_target.py", "tests/unit/platform/test_target.py"]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout
    order = [line.split("/")[1] for line in collected.splitlines() if line.startswith("tests/")]
    assert order and order == sorted(order, key=["unit", "cluster", "e2e"].index), order
    assert order[0] == "unit" and order[-1] == "e2e"


def test_a_script_run_for_the_e2e_tier_logs_its_output_and_fails_with_the_log_tail(tmp_path: Path) -> None:
    from tests.e2e.platform import run_logged

    script, log = tmp_path / "step.sh", tmp_path / "platform.log"
    script.write_text(
        "#!/usr/bin/env bash\necho progress >&2\necho 'export KUBECONFIG=/k PATH=/b'\n"
        'for i in $(seq 50); do echo "line $i" >&2; done\nexit "${FAIL:-0}"\n'
    )
    script.chmod(0o755)
    assert run_logged([str(script)], log, 30, keep_stdout=True) == "export KUBECONFIG=/k PATH=/b\n"
    assert "progress" in log.read_text() and "KUBECONFIG" not in log.read_text()
    with pytest.raises(RuntimeError) as failed:
        run_logged([str(script), "up"], log, 30, env={**os.environ, "FAIL": "3"})
    message = str(failed.value)
    assert message.startswith(f"{script} up failed (3):") and message.endswith("line 50")
    assert "line 11\n" in message and "line 10\n" not in message  # the last 40 lines of the log
