"""Pods and nodes for the updater: read as plain JSON (as the API server serves them), resized
through `pods/resize`, evicted through the Eviction API (so PodDisruptionBudgets hold), and
created only to bring a bare pod back."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, cast

from kubernetes import client

from bridgescale.kube import api_errors, wake_on_changes

logger = logging.getLogger(__name__)

RawObject = dict[str, Any]


def _plain(api: client.ApiClient, obj: object) -> RawObject:
    return cast(RawObject, api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def _json(response: Any) -> RawObject:
    """The API server's answer as it sent it: turning it into the client's model objects and
    back costs more than the request itself, at a thousand pods a pass."""
    return cast(RawObject, json.loads(response.data))


def get_pod(api: client.ApiClient, namespace: str, name: str) -> RawObject:
    with api_errors():
        core = client.CoreV1Api(api)
        return _json(core.read_namespaced_pod(name, namespace, _preload_content=False))


def list_pods(
    api: client.ApiClient, namespace: str | None = None, label_selector: str | None = None
) -> list[RawObject]:
    """Pods of one namespace, or of all namespaces when `namespace` is None."""
    core = client.CoreV1Api(api)
    with api_errors():
        if namespace is None:
            found = core.list_pod_for_all_namespaces(
                label_selector=label_selector, _preload_content=False
            )
        else:
            found = core.list_namespaced_pod(
                namespace, label_selector=label_selector, _preload_content=False
            )
    return cast(list[RawObject], _json(found)["items"])


def annotate_pod(
    api: client.ApiClient, namespace: str, name: str, annotations: dict[str, str | None]
) -> None:
    """Set (or, for None, remove) annotations of a pod, by a patch of its metadata. The demo
    turns the node simulator's load this way; the updater never writes pods."""
    with api_errors():
        client.CoreV1Api(api).patch_namespaced_pod(
            name, namespace, {"metadata": {"annotations": annotations}}
        )


def resize_pod(api: client.ApiClient, namespace: str, name: str, patch: RawObject) -> RawObject:
    """A strategic merge patch of the `pods/resize` subresource; the pod as the server stored it.

    Put `metadata.resourceVersion` in the patch to make it conditional: a pod changed since it
    was read raises Conflict.
    """
    with api_errors():
        core = client.CoreV1Api(api)
        return _json(
            core.patch_namespaced_pod_resize(name, namespace, patch, _preload_content=False)
        )


def evict_pod(api: client.ApiClient, namespace: str, name: str, uid: str) -> None:
    """Evict through the Eviction API, so PodDisruptionBudgets hold; only the pod with `uid`.

    A budget that allows no disruption raises TooManyRequests.
    """
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
    )
    with api_errors():
        client.CoreV1Api(api).create_namespaced_pod_eviction(name, namespace, body)


def create_pod(api: client.ApiClient, namespace: str, body: RawObject) -> RawObject:
    with api_errors():
        created = client.CoreV1Api(api).create_namespaced_pod(namespace, body)  # type: ignore[arg-type]
    return _plain(api, created)


def list_nodes(api: client.ApiClient) -> list[RawObject]:
    with api_errors():
        found = client.CoreV1Api(api).list_node(_preload_content=False)
    return cast(list[RawObject], _json(found)["items"])


def list_namespaces(api: client.ApiClient, label_selector: str) -> list[str]:
    with api_errors():
        found = client.CoreV1Api(api).list_namespace(label_selector=label_selector)
    return [str(ns.metadata.name) for ns in found.items if ns.metadata]


def get_owner(api: client.ApiClient, namespace: str, kind: str, name: str) -> RawObject:
    """A pod's controller (ReplicaSet, Deployment, StatefulSet) as plain JSON."""
    apps = client.AppsV1Api(api)
    readers = {
        "ReplicaSet": apps.read_namespaced_replica_set,
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
    }
    with api_errors():
        return _json(readers[kind](name, namespace, _preload_content=False))


def watch_pods_in_background(api: client.ApiClient, wake: threading.Event) -> threading.Thread:
    """Set `wake` on every pod change in the cluster (the loop then makes a pass)."""
    return wake_on_changes(client.CoreV1Api(api).list_pod_for_all_namespaces, wake, "pod-watch")
