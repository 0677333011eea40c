"""Bad input reaches the updater as its owner wrote it: a mistyped annotation, a recommendation
whose quantity no real size has. Each ends in a Warning Event naming what is wrong and no write
to the pod (its resourceVersion unchanged), the rest of the namespace still served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from bridgescale.kube import admission, updater_events
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.policy import MAX_ALLOWED, UPDATE_MODE
from bridgescale.updater.webhook import WebhookServer
from tests.cluster.test_updater import _reconciler
from tests.cluster.updater_support import (
    GROUP,
    PLURAL,
    VERSION,
    bare_pod,
    recommend,
    run_on_node,
    running_bare_pod,
)

pytestmark = pytest.mark.cluster
TARGET = {"cpu": "1", "memory": "512Mi"}


def _pod(api: client.ApiClient, namespace: str, node: str, name: str, **annotations: str) -> str:
    """A running bare pod recommended TARGET; its resourceVersion."""
    manifest: dict[str, Any] = bare_pod(name, node)
    manifest["metadata"]["annotations"] = annotations
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, manifest)
    run_on_node(api, namespace, name, node)
    recommend(api, namespace, "Pod", name, TARGET)
    return str(core.read_namespaced_pod(name, namespace).metadata.resource_version)


def _warnings(api: client.ApiClient, namespace: str, name: str, reason: str) -> list[str]:
    events = updater_events.list_events(api, namespace, name)
    return [e["note"] for e in events if e["reason"] == reason and e["type"] == "Warning"]


@pytest.mark.parametrize(
    ("annotation", "value", "named"),
    [
        (UPDATE_MODE, "inplace", "update mode must be one of"),
        (MAX_ALLOWED, "cpu=2,memory=4G1", "'4G1' is not a Kubernetes quantity"),
        ("bridgescale.dev/updateMode", "Off", "unknown bridgescale annotation"),
    ],
)
def test_a_mistyped_annotation_holds_the_pod_with_an_event(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    annotation: str, value: str, named: str, checked: Callable[[str], None],
) -> None:  # fmt: skip
    version = _pod(api, bridges, node, "held", **{annotation: value})
    _pod(api, bridges, node, "served")  # a well-annotated neighbour is still resized

    actions = {a.pod: (a.decision, a.result) for a in _reconciler(as_updater).run_pass()}

    decision, reason = actions[f"{bridges}/held"]
    assert decision == "Skip"
    assert named in reason
    assert actions[f"{bridges}/served"] == ("Resize", "Accepted")
    pod = client.CoreV1Api(api).read_namespaced_pod("held", bridges)
    assert pod.metadata.resource_version == version  # no write to the pod
    (note,) = _warnings(api, bridges, "held", "PolicyUnusable")
    assert annotation in note and named in note
    checked(f"{annotation}={value!r}: Warning PolicyUnusable {note!r}; pod resourceVersion kept")


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ({"cpu": "1", "memory": "1e999999"}, "target.memory: '1e999999' is too large"),
        ({"cpu": "9223372036854776", "memory": "512Mi"}, "target.cpu"),
    ],
)
def test_an_unusable_recommendation_is_reported_and_not_applied(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    target: dict[str, str], named: str, checked: Callable[[str], None],
) -> None:  # fmt: skip
    running_bare_pod(api, bridges, node, TARGET)
    status = {
        "status": {"containerRecommendations": [{"containerName": "router", "target": target}]}
    }
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, bridges, PLURAL, "pod-bridge-0", status
    )
    core = client.CoreV1Api(api)
    version = core.read_namespaced_pod("bridge-0", bridges).metadata.resource_version

    actions = [a for a in _reconciler(as_updater).run_pass() if a.pod.startswith(bridges)]

    assert actions == []  # no recommendation to act on
    assert core.read_namespaced_pod("bridge-0", bridges).metadata.resource_version == version
    (note,) = _warnings(api, bridges, "pod-bridge-0", "RecommendationUnusable")
    assert named in note
    checked(f"target {target}: Warning RecommendationUnusable {note!r}; pod resourceVersion kept")


def test_the_webhook_does_not_size_a_pod_with_a_mistyped_annotation(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    server = WebhookServer(KubeCluster(as_updater))
    server.start()
    url = f"https://127.0.0.1:{server.port}/mutate"
    admission.register_webhook(as_updater, url, server.ca_bundle)
    core = client.CoreV1Api(api)
    try:
        recommend(api, bridges, "Pod", "held", TARGET)
        recommend(api, bridges, "Pod", "sized", TARGET)
        manifest: dict[str, Any] = bare_pod("held", node)
        manifest["metadata"]["annotations"] = {MAX_ALLOWED: "cpu=2,memory=4G1"}
        core.create_namespaced_pod(bridges, manifest)
        core.create_namespaced_pod(bridges, bare_pod("sized", node))
    finally:
        client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(admission.NAME)
        server.stop()

    held = core.read_namespaced_pod("held", bridges).spec.containers[0].resources.requests
    sized = core.read_namespaced_pod("sized", bridges).spec.containers[0].resources.requests
    assert held == {"cpu": "500m", "memory": "256Mi"}  # as its owner wrote it
    assert sized == TARGET
    checked(f"webhook: a pod with max-allowed 'cpu=2,memory=4G1' admitted as written ({held}); "
            f"its neighbour sized to {sized}")  # fmt: skip
