"""Where recommendations are published: bridgescale's ResourceRecommendation objects and the
status of VPA objects that name bridgescale as their recommender.

Every status write carries the resourceVersion it was computed from; a `Conflict` means someone
wrote in between, and the caller re-reads and recomputes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from bridgescale.kube import FIELD_MANAGER, Conflict, NotFound, api_errors, wake_on_changes
from bridgescale.kube.workloads import WorkloadRef

GROUP = "bridgescale.dev"
VERSION = "v1alpha1"
PLURAL = "resourcerecommendations"
KIND = "ResourceRecommendation"

VPA_GROUP = "autoscaling.k8s.io"
VPA_VERSION = "v1"
VPA_PLURAL = "verticalpodautoscalers"


def as_object(answer: object) -> dict[str, Any]:
    """A custom-object call's answer, which the client types as `object`, as the dict it is."""
    if not isinstance(answer, dict):
        raise TypeError(f"expected an object from the API server, got {type(answer).__name__}")
    return answer


@dataclass(frozen=True)
class PublishedRecommendation:
    """A ResourceRecommendation as it stands in the API server."""

    namespace: str
    name: str
    target_ref: Mapping[str, str]
    status: Mapping[str, Any]
    resource_version: str


@dataclass(frozen=True)
class VpaObject:
    """The parts of a VerticalPodAutoscaler that bridgescale reads."""

    namespace: str
    name: str
    target_ref: Mapping[str, str]
    recommenders: tuple[str, ...]
    resource_policy: Mapping[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    resource_version: str = ""


def _published(obj: Mapping[str, Any]) -> PublishedRecommendation:
    meta = obj["metadata"]
    return PublishedRecommendation(
        namespace=meta["namespace"],
        name=meta["name"],
        target_ref=dict(obj.get("spec", {}).get("targetRef", {})),
        status=dict(obj.get("status") or {}),
        resource_version=meta["resourceVersion"],
    )


def list_recommendations(api: client.ApiClient, namespace: str) -> list[PublishedRecommendation]:
    with api_errors():
        found = as_object(
            client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL
            )
        )
    return [_published(item) for item in found.get("items", [])]


def read_recommendation(
    api: client.ApiClient, namespace: str, name: str
) -> PublishedRecommendation | None:
    try:
        with api_errors():
            found = as_object(
                client.CustomObjectsApi(api).get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name
                )
            )
    except NotFound:
        return None
    return _published(found)


def ensure_recommendation(api: client.ApiClient, ref: WorkloadRef) -> PublishedRecommendation:
    """The workload's ResourceRecommendation, created if missing; owned by the workload, so the
    garbage collector deletes it with the workload."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            "ownerReferences": [
                {
                    "apiVersion": ref.api_version,
                    "kind": ref.kind,
                    "name": ref.name,
                    "uid": ref.uid,
                }
            ],
        },
        "spec": {"targetRef": ref.target_ref()},
    }
    # A create, not an apply: one request the API server answers cheaply, and the recommender
    # creates thousands of these on its first cycle.
    objects = client.CustomObjectsApi(api)
    try:
        with api_errors():
            return _published(
                as_object(
                    objects.create_namespaced_custom_object(
                        GROUP, VERSION, ref.namespace, PLURAL, body, field_manager=FIELD_MANAGER
                    )
                )
            )
    except Conflict:  # made since the list: take it as it is
        found = read_recommendation(api, ref.namespace, ref.name)
        if found is None:
            raise
        return found


def write_recommendation_status(
    api: client.ApiClient, current: PublishedRecommendation, status: Mapping[str, Any]
) -> PublishedRecommendation:
    """Replace the status, if the object is still at `current.resource_version`."""
    where = (GROUP, VERSION, current.namespace, PLURAL, current.name)
    return _published(_patch_status(api, where, current.resource_version, status))


def _patch_status(
    api: client.ApiClient,
    where: tuple[str, str, str, str, str],
    resource_version: str,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge-patch the status of (group, version, namespace, plural, name) at a version."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
    with api_errors():
        return as_object(
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(*where, body)
        )


def _vpa(obj: Mapping[str, Any]) -> VpaObject:
    meta, spec = obj["metadata"], obj.get("spec", {})
    return VpaObject(
        namespace=meta["namespace"],
        name=meta["name"],
        target_ref=dict(spec.get("targetRef") or {}),
        recommenders=tuple(r.get("name", "") for r in spec.get("recommenders") or []),
        resource_policy=dict(spec.get("resourcePolicy") or {}),
        status=dict(obj.get("status") or {}),
        resource_version=meta["resourceVersion"],
    )


def list_vpas(api: client.ApiClient, namespace: str) -> list[VpaObject]:
    """The namespace's VPA objects; none when the VPA CRD is not installed."""
    try:
        with api_errors():
            found = as_object(
                client.CustomObjectsApi(api).list_namespaced_custom_object(
                    VPA_GROUP, VPA_VERSION, namespace, VPA_PLURAL
                )
            )
    except NotFound:
        return []
    return [_vpa(item) for item in found.get("items", [])]


def write_vpa_status(api: client.ApiClient, vpa: VpaObject, status: Mapping[str, Any]) -> VpaObject:
    """Merge `status` (recommendation, conditions) into the VPA's status, at its version."""
    where = (VPA_GROUP, VPA_VERSION, vpa.namespace, VPA_PLURAL, vpa.name)
    return _vpa(_patch_status(api, where, vpa.resource_version, status))


def watch_recommendations_in_background(
    api: client.ApiClient, wake: threading.Event
) -> threading.Thread:
    """Set `wake` on every change of a ResourceRecommendation, so that a new recommendation is
    acted on at once rather than at the next resync."""
    objects = client.CustomObjectsApi(api)
    return wake_on_changes(
        objects.list_cluster_custom_object, wake, "recommendation-watch", GROUP, VERSION, PLURAL
    )
