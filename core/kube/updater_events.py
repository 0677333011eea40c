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
    reference = {"kind": regarding["kind"], "name": regarding["name"], "namespace": namespace}
    reference |= {k: regarding[k] for k in ("apiVersion", "uid") if regarding.get(k)}
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": f"{regarding['name']}.{uuid.uuid4().hex[:12]}",
            "namespace": namespace,
        },
        "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": action,
        "reason": reason,
        "note": note[:1024],
        "type": "Warning" if warning else "Normal",
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "regarding": reference,
    }
    with api_errors():  # plain JSON both ways: an Event per resize, a thousand in a fleet change
        answer: Any = client.EventsV1Api(api).create_namespaced_event(
            namespace, cast(Any, event), _preload_content=False
        )
        _ = answer.data  # read, so that the connection goes back to the pool


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
