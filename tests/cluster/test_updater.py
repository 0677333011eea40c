"""The updater against the real API server, authenticated as its own service account with the
RBAC from deploy/updater/: resize in place, the 409 precondition, recreation after a Deferred
timeout with the webhook sizing the replacement, a PodDisruptionBudget blocking the fallback, and
a bare pod recreated from its saved manifest after a crash."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from bridgescale.kube import admission, leases, updater_events
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.updater.apply import ResizeResult, apply_resize
from bridgescale.updater.metrics import UpdaterMetrics
from bridgescale.updater.pods import pod_from_json
from bridgescale.updater.ports import RawObject, Refused
from bridgescale.updater.reconcile import Action, Reconciler
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import ContainerChange, Resize
from tests.cluster.waiting import eventually

from .updater_support import (
    UPDATER_NAMESPACE,
    bare_pod,
    deployment,
    recommend,
    report,
    run_on_node,
    running_bare_pod,
)

pytestmark = pytest.mark.cluster
BEFORE = dt.timedelta(minutes=10)


def _mine(actions: list[Action], namespace: str) -> list[tuple[str, str]]:
    return [(a.decision, a.result) for a in actions if a.pod.startswith(namespace + "/")]


def _reconciler(as_updater: client.ApiClient, **settings: object) -> Reconciler:
    metrics = UpdaterMetrics(CollectorRegistry())
    return Reconciler(KubeCluster(as_updater), UpdaterSettings(**settings), metrics)


def _reasons(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in updater_events.list_events(api, namespace, name)]


def test_rising_recommendation_resizes_in_place(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str
) -> None:
    core = client.CoreV1Api(api)
    uid = running_bare_pod(api, bridges, node, {"cpu": "1", "memory": "512Mi"})
    reconciler = _reconciler(as_updater)

    actions = reconciler.run_pass()

    assert _mine(actions, bridges) == [("Resize", "Accepted")]
    pod = core.read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.generation == 2
    assert pod.spec.containers[0].resources.requests == {"cpu": "1", "memory": "512Mi"}
    assert pod.spec.containers[0].resources.limits == {"cpu": "1", "memory": "512Mi"}
    report(api, bridges, "bridge-0")  # the kubelet applies it
    assert reconciler.settle(dt.timedelta(seconds=30))
    pod = core.read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.uid == uid
    assert pod.status.container_statuses[0].restart_count == 0
    assert pod.status.container_statuses[0].resources.requests["cpu"] == "1"
    assert "Resized" in _reasons(api, bridges, "bridge-0")
    registry = reconciler.metrics.registry
    assert (
        registry.get_sample_value("bridgescale_updater_resizes_total", {"result": "Accepted"}) == 1
    )
    assert (
        registry.get_sample_value("bridgescale_updater_resizes_total", {"result": "Settled"}) == 1
    )
    assert registry.get_sample_value("bridgescale_updater_resize_pending_seconds_count") == 1
    assert _mine(reconciler.run_pass(), bridges)[0][0] == "Skip"  # nothing more to do


class CountingCluster(KubeCluster):
    """The real cluster, counting the refusals it passes on."""

    refusals: list[Refused]

    def resize_pod(self, namespace: str, name: str, patch: RawObject) -> RawObject | Refused:
        answer = super().resize_pod(namespace, name, patch)
        if isinstance(answer, Refused):
            self.refusals.append(answer)
        return answer


@pytest.mark.fault
def test_a_stale_resource_version_is_refused_then_reread_and_retried(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(bridges, bare_pod("bridge-0", node))
    run_on_node(api, bridges, "bridge-0", node)
    stale = pod_from_json(
        api.sanitize_for_serialization(core.read_namespaced_pod("bridge-0", bridges))
    )
    core.patch_namespaced_pod("bridge-0", bridges, {"metadata": {"labels": {"moved": "yes"}}})
    before = stale.containers[0]
    bigger = {"cpu": 1.0, "memory": before.requests["memory"]}
    resize = Resize(stale, (ContainerChange("router", bigger, bigger, before),))
    cluster = CountingCluster(as_updater)
    cluster.refusals = []

    outcome = apply_resize(cluster, resize, replan=lambda fresh: Resize(fresh, resize.changes))

    assert outcome.result is ResizeResult.ACCEPTED
    assert [r.kind for r in cluster.refusals] == ["Conflict"]
    after = core.read_namespaced_pod("bridge-0", bridges)
    assert after.spec.containers[0].resources.requests["cpu"] == "1"
    assert after.metadata.labels["moved"] == "yes"  # the other writer's change is kept
    checked(
        "a second writer changed the pod first: the resize got 409 Conflict once, re-read the "
        "pod, re-planned and was accepted; the other writer's label kept"
    )


def _only_pod(api: client.ApiClient, namespace: str) -> client.V1Pod:
    return eventually(
        lambda: next(iter(client.CoreV1Api(api).list_namespaced_pod(namespace).items), None),
        what="the ReplicaSet's pod",
    )


def test_deferred_past_the_timeout_recreates_once_at_the_recommended_size(
    local_cluster: LocalEnvironment, api: client.ApiClient, updater_kubeconfig: Path, bridges: str,
    node: str,
) -> None:  # fmt: skip
    client.AppsV1Api(api).create_namespaced_deployment(bridges, deployment("bridge", node))
    old = _only_pod(api, bridges)
    run_on_node(api, bridges, old.metadata.name, node)
    recommend(api, bridges, "Deployment", "bridge", {"cpu": "2", "memory": "512Mi"})
    grown = {"requests": {"cpu": "2", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}}
    client.CoreV1Api(api).patch_namespaced_pod_resize(
        old.metadata.name,
        bridges,
        {"spec": {"containers": [{"name": "router", "resources": grown}]}},
    )
    applied = {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    since = dt.datetime.now(dt.UTC) - BEFORE
    report(api, bridges, old.metadata.name, pending="Deferred", since=since, applied=applied)

    try:
        done = subprocess.run(
            _updater(updater_kubeconfig, "--deferral-timeout", "5m"),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        print(done.stdout, done.stderr)
        assert done.returncode == 0
    finally:
        client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(admission.NAME)

    assert "Recreate\tEvicted" in done.stdout
    pods = client.CoreV1Api(api).list_namespaced_pod(bridges).items
    replacements = [p for p in pods if p.metadata.uid != old.metadata.uid]
    assert len(replacements) == 1
    assert replacements[0].spec.containers[0].resources.requests == {"cpu": "2", "memory": "512Mi"}
    evicted = [p for p in pods if p.metadata.uid == old.metadata.uid]
    assert not evicted or evicted[0].metadata.deletion_timestamp is not None
    assert "Recreating" in _reasons(api, bridges, old.metadata.name)


def test_a_budget_that_allows_no_disruption_blocks_the_fallback(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str
) -> None:
    core = client.CoreV1Api(api)
    running_bare_pod(api, bridges, node, {"cpu": "2", "memory": "256Mi"})
    policy = client.PolicyV1Api(api)
    policy.create_namespaced_pod_disruption_budget(
        bridges,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "bridges"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "bridge-0"}}},
        },
    )
    eventually(
        lambda: (
            policy.read_namespaced_pod_disruption_budget("bridges", bridges).status.current_healthy
            == 1
        ),
        what="the disruption controller to count the pod",
    )
    report(api, bridges, "bridge-0", pending="Infeasible")

    actions = _reconciler(as_updater).run_pass()

    assert _mine(actions, bridges) == [("Recreate", "Blocked")]
    assert core.read_namespaced_pod("bridge-0", bridges).metadata.deletion_timestamp is None
    events = updater_events.list_events(api, bridges, "bridge-0")
    blocked = [e for e in events if e["reason"] == "EvictionBlocked"]
    assert blocked and blocked[0]["type"] == "Warning"
    assert "PodDisruptionBudget" in blocked[0]["note"]
    print(blocked[0]["note"])


def _updater(kubeconfig: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "bridgescale", "updater", "--once", "--kubeconfig",
            str(kubeconfig), *flags]  # fmt: skip


@pytest.mark.fault
def test_a_bare_pod_comes_back_after_the_updater_is_killed_between_eviction_and_creation(
    api: client.ApiClient, updater_kubeconfig: Path, bridges: str, node: str,
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    core = client.CoreV1Api(api)
    old_uid = running_bare_pod(api, bridges, node, {"cpu": "2", "memory": "256Mi"})
    report(api, bridges, "bridge-0", pending="Infeasible")
    saved = "bridgescale.dev/saved-pod=true"

    first = subprocess.Popen(_updater(updater_kubeconfig, "--no-webhook"))
    try:
        eventually(
            lambda: core.read_namespaced_pod("bridge-0", bridges).metadata.deletion_timestamp,
            what="the eviction",
        )
        assert core.list_namespaced_config_map(bridges, label_selector=saved).items
    finally:
        first.kill()  # the updater dies while it waits for the pod to go
        first.wait()
    core.delete_namespaced_pod("bridge-0", bridges, grace_period_seconds=0)  # the kubelet's part

    def gone() -> bool:
        return old_uid not in {p.metadata.uid for p in core.list_namespaced_pod(bridges).items}

    eventually(gone, what="the evicted pod to be gone")

    second = subprocess.run(_updater(updater_kubeconfig, "--no-webhook"), timeout=120, check=False)

    assert second.returncode == 0
    pod = core.read_namespaced_pod("bridge-0", bridges)
    assert pod.metadata.uid != old_uid
    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "256Mi"}
    assert core.list_namespaced_config_map(bridges, label_selector=saved).items == []
    checked(
        "updater SIGKILLed after evicting a bare pod (its manifest saved in a ConfigMap): the "
        "next run recreated it once at the target (new uid, cpu 2) and deleted the ConfigMap"
    )


def test_dry_run_decides_and_writes_nothing(
    api: client.ApiClient, updater_kubeconfig: Path, bridges: str, node: str
) -> None:
    running_bare_pod(api, bridges, node, {"cpu": "1", "memory": "512Mi"})

    done = subprocess.run(
        _updater(updater_kubeconfig, "--dry-run"), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0
    assert f"{bridges}/bridge-0\tPod {bridges}/bridge-0\tResize\tdry run" in done.stdout
    assert client.CoreV1Api(api).read_namespaced_pod("bridge-0", bridges).metadata.generation == 1
    assert _reasons(api, bridges, "bridge-0") == []


def test_one_replica_leads_at_a_time(as_updater: client.ApiClient) -> None:
    lease = f"updater-test-{os.getpid()}"

    assert leases.acquire(as_updater, UPDATER_NAMESPACE, lease, "a", duration_seconds=30)
    assert not leases.acquire(as_updater, UPDATER_NAMESPACE, lease, "b", duration_seconds=30)
    assert leases.acquire(as_updater, UPDATER_NAMESPACE, lease, "a", duration_seconds=30)


def test_the_service_leads_on_its_lease_and_acts_on_a_pod_change(
    api: client.ApiClient, updater_kubeconfig: Path, bridges: str, node: str
) -> None:
    core = client.CoreV1Api(api)
    command = _updater(updater_kubeconfig, "--lease-namespace", UPDATER_NAMESPACE)
    command.remove("--once")
    service = subprocess.Popen(command)
    try:
        coordination = client.CoordinationV1Api(api)

        def holder() -> str | None:
            leases = coordination.list_namespaced_lease(UPDATER_NAMESPACE).items
            found = [x for x in leases if x.metadata.name == "bridgescale-updater"]
            return found[0].spec.holder_identity if found else None

        eventually(holder, what="the updater to take its Lease")
        running_bare_pod(api, bridges, node, {"cpu": "1", "memory": "512Mi"})
        resized = eventually(
            lambda: core.read_namespaced_pod("bridge-0", bridges).metadata.generation == 2,
            timeout=30,
            what="the updater to resize the new pod",
        )
        assert resized
    finally:
        service.terminate()
        service.wait(timeout=30)
        registrations = client.AdmissionregistrationV1Api(api)
        if any(
            w.metadata.name == admission.NAME
            for w in registrations.list_mutating_webhook_configuration().items
        ):
            registrations.delete_mutating_webhook_configuration(admission.NAME)
