"""Fault tests: the API server restarted while a resize is pending, the webhook down while pods
are created, and the leading updater killed mid-work with a second replica taking over. Each ends
with the cluster consistent (spec and applied resources at the recommendation, the same pod, one
resize per pod) and records what it checked.

The other faults of the list live beside the code they exercise: Prometheus killed during a cycle
(tests/cluster/test_recommender.py), the updater killed between the eviction and the recreation
of a bare pod and a second writer racing a resize (tests/cluster/test_updater.py); all carry the
`fault` mark."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from kubernetes import client

from bridgescale.kube import admission, updater_events
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.updater.webhook import WebhookServer
from tests.cluster.test_updater import _reconciler, _updater
from tests.cluster.updater_support import (
    UPDATER_NAMESPACE,
    bare_pod,
    recommend,
    report,
    run_on_node,
    running_bare_pod,
)
from tests.cluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.fault]
LEASE = "bridgescale-updater"
TARGET = {"cpu": "1", "memory": "512Mi"}
OLD = {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def _service(kubeconfig: Path, log: IO[bytes], **env: str) -> subprocess.Popen[bytes]:
    """The updater as a long-running service leading on its Lease, without the webhook."""
    command = _updater(kubeconfig, "--lease-namespace", UPDATER_NAMESPACE, "--no-webhook")
    command.remove("--once")
    environment = {**os.environ, **{f"BRIDGESCALE_UPDATER_{k}": v for k, v in env.items()}}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def service_log(tmp_path: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """Log files for updater processes, printed at the end of the test."""
    opened: list[tuple[Path, IO[bytes]]] = []

    def open_log(name: str) -> IO[bytes]:
        path = tmp_path / f"{name}.log"
        opened.append((path, path.open("wb")))
        return opened[-1][1]

    yield open_log
    for path, handle in opened:
        handle.close()
        print(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")


def _generation(api: client.ApiClient, namespace: str, name: str) -> int:
    return int(client.CoreV1Api(api).read_namespaced_pod(name, namespace).metadata.generation)


def _count(api: client.ApiClient, namespace: str, name: str, reason: str) -> int:
    """Events of `reason` on the pod itself (a bare pod's workload events name it too, with a
    note that starts with its name)."""
    events = updater_events.list_events(api, namespace, name)
    return sum(1 for e in events if e["reason"] == reason and not e["note"].startswith(f"{name}: "))


def _holder(api: client.ApiClient) -> tuple[str, int] | None:
    leases = client.CoordinationV1Api(api).list_namespaced_lease(UPDATER_NAMESPACE).items
    found = [lease for lease in leases if lease.metadata.name == LEASE]
    if not found or not found[0].spec.holder_identity:
        return None
    return str(found[0].spec.holder_identity), int(found[0].spec.lease_transitions or 0)


def _holder_is(api: client.ApiClient, pid: int) -> bool:
    held = _holder(api)
    return held is not None and held[0].endswith(f"-{pid}")


def test_the_api_server_restarted_while_a_resize_is_pending(
    local_cluster: LocalEnvironment, api: client.ApiClient, updater_kubeconfig: Path,
    bridges: str, node: str, service_log: Callable[[str], IO[bytes]],
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    core = client.CoreV1Api(api)
    uid = running_bare_pod(api, bridges, node, TARGET)
    service = _service(updater_kubeconfig, service_log("updater"))
    try:
        eventually(lambda: _generation(api, bridges, "bridge-0") == 2, 60, "the resize")
        report(api, bridges, "bridge-0", pending="Deferred", applied=OLD)  # the kubelet waits

        started = time.monotonic()
        local_cluster.supervisor.stop("kube-apiserver")
        time.sleep(5)  # the updater's lease renewal and passes fail meanwhile
        local_cluster.control_plane.start()
        downtime = time.monotonic() - started
        assert service.poll() is None, "the updater exited while the API server was down"

        report(api, bridges, "bridge-0")  # the kubelet applies the pending resize
        core.create_namespaced_pod(bridges, bare_pod("bridge-1", node))
        run_on_node(api, bridges, "bridge-1", node)
        recommend(api, bridges, "Pod", "bridge-1", TARGET)
        eventually(
            lambda: _generation(api, bridges, "bridge-1") == 2, 90, "a resize after the restart"
        )
        assert service.poll() is None
    finally:
        _stop(service)

    pod = core.read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.uid == uid
    assert pod.metadata.generation == 2  # resized once, not again after the restart
    assert pod.spec.containers[0].resources.requests == TARGET
    assert pod.status.container_statuses[0].resources.requests == TARGET
    # The API server may go away between the PATCH and its Event: at most one, never two.
    events = _count(api, bridges, "bridge-0", "Resized")
    assert events <= 1
    checked(
        f"API server down {downtime:.1f} s with a Deferred resize pending: the updater kept "
        "running, acted on a new pod after the restart, and the pending pod was resized once "
        f"(generation 2, same uid, spec = applied = target, {events} Resized event)"
    )


def test_pods_created_while_the_webhook_is_down_start_and_are_resized_in_place_later(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    core = client.CoreV1Api(api)
    registrations = client.AdmissionregistrationV1Api(api)
    server = WebhookServer(KubeCluster(as_updater))
    server.start()
    admission.register_webhook(
        as_updater, f"https://127.0.0.1:{server.port}/mutate", server.ca_bundle
    )
    try:
        recommend(api, bridges, "Pod", "sized", TARGET)
        core.create_namespaced_pod(bridges, bare_pod("sized", node))
        sized = core.read_namespaced_pod("sized", bridges).spec.containers[0].resources.requests
        assert sized == TARGET  # the webhook is up: the new pod gets the recommendation
        server.stop()  # the updater's webhook goes away; its registration stays

        recommend(api, bridges, "Pod", "bridge-0", TARGET)
        started = time.monotonic()
        core.create_namespaced_pod(bridges, bare_pod("bridge-0", node))
        admitted = time.monotonic() - started
    finally:
        registrations.delete_mutating_webhook_configuration(admission.NAME)

    created = core.read_namespaced_pod("bridge-0", bridges)
    assert created.spec.containers[0].resources.requests == OLD["requests"]  # admitted as is
    run_on_node(api, bridges, "bridge-0", node)
    reconciler = _reconciler(as_updater)
    mine = [
        (a.pod, a.decision, a.result) for a in reconciler.run_pass() if a.pod.startswith(bridges)
    ]
    assert (f"{bridges}/bridge-0", "Resize", "Accepted") in mine
    report(api, bridges, "bridge-0")

    pod = core.read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.uid == created.metadata.uid
    assert pod.metadata.generation == 2
    assert pod.spec.containers[0].resources.requests == TARGET
    assert pod.status.container_statuses[0].resources.requests == TARGET
    checked(
        f"webhook down (failurePolicy Ignore): the pod was admitted unsized in {admitted:.2f} s "
        "and started; the updater then resized it in place to the target (same uid, "
        "generation 2); with the webhook up a pod was sized at creation"
    )


def test_the_leader_killed_mid_work_is_replaced_and_no_action_is_taken_twice(
    api: client.ApiClient, updater_kubeconfig: Path, bridges: str, node: str,
    service_log: Callable[[str], IO[bytes]], checked: Callable[[str], None],
) -> None:  # fmt: skip
    names = ("bridge-0", "bridge-1")
    for name in names:
        client.CoreV1Api(api).create_namespaced_pod(bridges, bare_pod(name, node))
        run_on_node(api, bridges, name, node)
        recommend(api, bridges, "Pod", name, TARGET)
    # One change a minute: the leader resizes one pod, and the other waits for its next minute.
    first = _service(updater_kubeconfig, service_log("first"), MAX_CHANGES_PER_MINUTE="1")
    second: subprocess.Popen[bytes] | None = None
    try:
        eventually(lambda: _holder_is(api, first.pid), 60, "the first replica to lead")
        second = _service(updater_kubeconfig, service_log("second"), MAX_CHANGES_PER_MINUTE="1")

        def one_resized() -> list[str]:
            return [n for n in names if _generation(api, bridges, n) == 2]

        done = eventually(one_resized, 60, "the leader's first resize")
        os.kill(first.pid, signal.SIGKILL)  # mid-work: the other pod is still to do
        first.wait()
        killed = time.monotonic()
        assert len(done) == 1
        report(api, bridges, done[0])  # the kubelet applies it
        (other,) = set(names) - set(done)

        eventually(lambda: _holder_is(api, second.pid), 90, "the second replica to take over")
        eventually(lambda: _generation(api, bridges, other) == 2, 60, "the follower's resize")
        failover = time.monotonic() - killed
        report(api, bridges, other)
        time.sleep(12)  # one more pass of the new leader (it wakes at least every 10 s)
        assert second.poll() is None
        transitions = (_holder(api) or ("", 0))[1]
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    assert _holder(api) is None  # stopped by SIGTERM, the new leader gave the Lease up

    generations = {name: _generation(api, bridges, name) for name in names}
    resized = {name: _count(api, bridges, name, "Resized") for name in names}
    assert generations == dict.fromkeys(names, 2)
    # The kill may fall between the PATCH and its Event: at most one Event, never two.
    assert resized[other] == 1
    assert resized[done[0]] <= 1
    checked(
        f"leader SIGKILLed after resizing {done[0]}; the follower took the Lease and resized "
        f"{other} {failover:.0f} s later; generations {generations}, Resized events {resized} "
        f"(each pod resized exactly once; generation counts resizes), "
        f"lease transitions {transitions}; the Lease released on SIGTERM"
    )
