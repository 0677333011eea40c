"""What the benchmarks share: a local cluster of their own, and waiting for it to reach a
state."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.settings import LocalClusterSettings, find_project_root


def environment(name: str, port_base: int, state_dir: Path | None) -> LocalEnvironment:
    """The control plane and Prometheus of a benchmark, in .bridgescale/<name>/ unless
    `state_dir` says otherwise: no simulator, fleet or history (it makes what it needs)."""
    settings = LocalClusterSettings(
        state_dir=state_dir or find_project_root(Path(__file__)) / ".bridgescale" / name,
        port_base=port_base,
        simulator=False,
        fleet=False,
        history_days=0,
    )
    return LocalEnvironment(settings, progress=print)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; exit the benchmark, naming `what`, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def has_default_account(api: client.ApiClient, namespace: str) -> bool:
    """Whether the namespace's default service account exists: pods are refused until it does."""
    try:
        client.CoreV1Api(api).read_namespaced_service_account("default", namespace)
    except ApiException:
        return False
    return True
