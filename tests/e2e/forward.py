"""`kubectl port-forward svc/NAME :PORT` from this host to a Service of a cluster that is not this machine's
node (whose NodePorts may not be reachable from here), kept alive for as long as the caller needs it."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

# What kubectl prints once it listens, e.g. "Forwarding from 127.0.0.1:43567 -> 8080" (the pod's port).
FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\s*$")


def forwarded_port(line: str) -> int | None:
    """The local port of a `kubectl port-forward` "Forwarding from" line on 127.0.0.1; None for others."""
    match = FORWARDING.match(line)
    return int(match.group(1)) if match else None


class PortForward:
    """One `kubectl port-forward`, restarted on the same local port whenever it exits.

    kubectl forwards to one pod of the Service, and exits when that pod goes away (a rollout replaces
    it), or stays and fails every connection: on its first error it is stopped. The restart picks a
    current pod, so the URL stays valid across rollouts (connections open at that moment fail, as they
    would when that pod went away behind a Service).
    """

    def __init__(self, kubectl: Path, kubeconfig: Path, namespace: str, service: str, port: int) -> None:
        self._command = [
            str(kubectl), "--kubeconfig", str(kubeconfig), "port-forward", "-n", namespace,
            "--address", "127.0.0.1", f"svc/{service}",
        ]  # fmt: skip
        self._port = port
        self._what = f"{namespace}/{service}:{port}"
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()  # close() never misses a process started at that moment
        self._process: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=8)
        self._thread = threading.Thread(target=self._run, name=f"port-forward {self._what}", daemon=True)
        self.local_port = 0

    def start(self, timeout: float = 60) -> str:
        """Start forwarding; the local URL http://127.0.0.1:<port>."""
        self._thread.start()
        if not self._ready.wait(timeout) or not self.local_port:
            self.close()
            raise RuntimeError(f"kubectl port-forward {self._what} did not start: {''.join(self._output)}")
        return f"http://127.0.0.1:{self.local_port}"

    def _run(self) -> None:
        while True:
            local = str(self.local_port) if self.local_port else ""
            with self._lock:
                if self._closed.is_set():
                    return
                process = subprocess.Popen(
                    [*self._command, f"{local}:{self._port}"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
                self._process = process
            assert process.stdout is not None
            for line in process.stdout:  # drained for its whole life: one line per connection
                port = forwarded_port(line)
                if port:
                    self.local_port = port
                    self._ready.set()
                elif not line.startswith("Handling connection"):
                    self._output.append(line)
                    if self._ready.is_set() and "error" in line.lower():
                        process.terminate()  # its pod went away but kubectl may stay: a new one picks a pod
            process.wait()
            if not self._ready.is_set():
                self._ready.set()  # never listened: start() reports the output
                return
            time.sleep(1)  # then a pod that is there now

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
