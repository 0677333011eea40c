"""Kubernetes Events on the objects bridgescale looks after: what people see in
`kubectl describe` and `kubectl get events`.

The same event (object, reason, message) keeps one name, so a problem reported every cycle
counts up on one Event instead of filling the namespace with copies.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from kubernetes import client

from bridgescale.kube import Conflict, NotFound, api_errors
from bridgescale.kube.workloads import WorkloadRef

NORMAL = "Normal"
WARNING = "Warning"


def _event_name(ref: WorkloadRef, reason: str, message: str) -> str:
    digest = hashlib.sha256(f"{ref.uid}/{reason}/{message}".encode()).hexdigest()[:16]
    return f"{ref.name[:200]}.{digest}"


def record_event(
    api: client.ApiClient,
    ref: WorkloadRef,
    *,
    reason: str,
    message: str,
    event_type: str = WARNING,
    component: str = "bridgescale-recommender",
) -> None:
    """Create the event on `ref`, or count one more occurrence of it."""
    core = client.CoreV1Api(api)
    name = _event_name(ref, reason, message)
    now = dt.datetime.now(dt.UTC)
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name, namespace=ref.namespace),
        involved_object=client.V1ObjectReference(
            api_version=ref.api_version,
            kind=ref.kind,
            name=ref.name,
            namespace=ref.namespace,
            uid=ref.uid,
        ),
        reason=reason,
        message=message[:1024],
        type=event_type,
        count=1,
        first_timestamp=now,
        last_timestamp=now,
        source=client.V1EventSource(component=component),
        reporting_component=component,
        reporting_instance=component,
    )
    try:
        with api_errors():
            core.create_namespaced_event(ref.namespace, body)
        return
    except Conflict:
        pass
    try:
        with api_errors():
            existing = core.read_namespaced_event(name, ref.namespace)
            patch = {"count": (existing.count or 1) + 1, "lastTimestamp": now.isoformat()}
            core.patch_namespaced_event(name, ref.namespace, patch)
    except NotFound:  # expired between the two calls; the next report creates it again
        pass
