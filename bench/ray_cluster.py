"""A Ray cluster on this machine for the benchmarks: a head (no CPUs of its own: it holds the cluster's
state and AE Lab's queue) and ``workers`` worker nodes of ``cpus`` CPUs each, all on 127.0.0.1, the commands
of docs/deploy.md. Each runs with ``--block`` in a process group of its own, so leaving the ``with`` stops
exactly what it started."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(workers: int = 2, cpus: int = 1):
    """The address (host:port) of a fresh local cluster, for AELAB_RAY_ADDRESS."""
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile("w", prefix="aelab-ray-", suffix=".log", delete=False)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    nodes = [subprocess.Popen([ray, "start", "--head", "--port", str(port), "--num-cpus", "0",
                               "--include-dashboard", "false", *common], env=env, cwd=ROOT, stdout=log,
                              stderr=log, start_new_session=True)]
    try:
        _wait(ray, address, env, nodes)
        for _ in range(workers):   # one at a time: nodes starting together on one machine time out
            ports = [arg for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                      "--runtime-env-agent-port", "--metrics-export-port")
                     for arg in (flag, str(_free_port()))]
            nodes.append(subprocess.Popen([ray, "start", "--address", address, "--num-cpus", str(cpus), *ports,
                                           *common], env=env, cwd=ROOT, stdout=log, stderr=log,
                                          start_new_session=True))
            _wait(ray, address, env, nodes)
        yield address
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def _wait(ray: str, address: str, env: dict, nodes: list, timeout: float = 90) -> None:
    """Until the cluster at ``address`` reports every node of ``nodes`` active."""
    deadline = time.time() + timeout
    while True:
        out = subprocess.run([ray, "status", "--address", address], capture_output=True, text=True, env=env)
        active = out.stdout.split("Active:")[-1].split("Pending:")[0].count(" node_")
        if out.returncode == 0 and active == len(nodes):
            return
        if time.time() > deadline or any(node.poll() is not None for node in nodes):
            raise RuntimeError(f"the local Ray cluster did not start: {out.stdout[-500:]} {out.stderr[-500:]}")
        time.sleep(0.5)
