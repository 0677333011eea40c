"""What the updater reads beside pods and writes as its record: ResourceRecommendations (read)
and Kubernetes Events on pods and workloads (written)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from kubernetes import client

from bridgescale.kube import api_errors

GROUP, VERSION, PLURAL = "bridgescale.dev", "v1alpha1", "resourcerecommendations"
REPORTING_CONTROLLER = "bridgescale.dev/updater"


def list_recommendations(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    with api_errors():
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL
        )
    return cast(list[dict[str, Any]], cast(dict[str, Any], found).get("items", []))


def emit_event(
    api: client.ApiClient,
    regarding: dict[str, str],
    *,
    reason: str,
    note: str,
    warning: bool = False,
    action: str = "Decide",
    instance: str = "bridgescale-updater",
) -> None:
    """An events.k8s.io/v1 Event on the object `regarding` (apiVersion, kind, namespace, name,
    uid)."""
    namespace = regarding["namespace"]
    now = dt.datetime.now(dt.UTC)
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(
            name=f"{regarding['name']}.{uuid.uuid4().hex[:12]}", namespace=namespace
        ),
        event_time=now,
        action=action,
        reason=reason,
        note=note[:1024],
        type="Warning" if warning else "Normal",
        reporting_controller=REPORTING_CONTROLLER,
        reporting_instance=instance,
        regarding=client.V1ObjectReference(
            api_version=regarding.get("apiVersion"),
            kind=regarding["kind"],
            name=regarding["name"],
            namespace=namespace,
            uid=regarding.get("uid"),
        ),
    )
    with api_errors():  # the answer is not needed: not turned into model objects
        client.EventsV1Api(api).create_namespaced_event(namespace, event, _preload_content=False)


def list_events(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, str]]:
    """Events regarding the object `name`: reason, note and type, oldest first."""
    with api_errors():
        found = client.EventsV1Api(api).list_namespaced_event(
            namespace, field_selector=f"regarding.name={name}"
        )
    events = sorted(found.items, key=lambda e: str(e.event_time or ""))
    return [
        {"reason": str(e.reason), "note": str(e.note or ""), "type": str(e.type)} for e in events
    ]
