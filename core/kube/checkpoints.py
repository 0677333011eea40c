"""The recommender's learned state, kept in the API server as RecommenderCheckpoint objects (one
per workload, owned by it), so a restarted recommender does not forget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from bridgescale.kube import FIELD_MANAGER, NotFound, api_errors, apply
from bridgescale.kube.recommendations import as_object
from bridgescale.kube.workloads import WorkloadRef

GROUP = "bridgescale.dev"
VERSION = "v1alpha1"
PLURAL = "recommendercheckpoints"
KIND = "RecommenderCheckpoint"


@dataclass(frozen=True)
class ContainerCheckpoint:
    container: str
    history_end: float
    state: Mapping[str, Any]
    oom_floor: float = 0.0
    oom_time: float = 0.0
    committed_hour: int = -1  # none: saved before the state took in any recommendation


@dataclass(frozen=True)
class Checkpoint:
    namespace: str
    target_ref: Mapping[str, str]
    model: str
    containers: list[ContainerCheckpoint] = field(default_factory=list)


def checkpoint_name(ref: WorkloadRef) -> str:
    """Kind and name: a Deployment and a StatefulSet may share a name."""
    return f"{ref.kind.lower()}-{ref.name}"[:253]


def _checkpoint(obj: Mapping[str, Any]) -> Checkpoint:
    spec = obj["spec"]
    return Checkpoint(
        namespace=obj["metadata"]["namespace"],
        target_ref=dict(spec["targetRef"]),
        model=spec["model"],
        containers=[
            ContainerCheckpoint(
                container=c["containerName"],
                history_end=float(c.get("historyEnd", 0.0)),
                state=c["state"],
                oom_floor=float(c.get("oomFloor", 0.0)),
                oom_time=float(c.get("oomTime", 0.0)),
                committed_hour=int(c.get("committedHour", -1)),
            )
            for c in spec.get("containers", [])
        ],
    )


def list_checkpoints(api: client.ApiClient, namespace: str) -> list[Checkpoint]:
    """The namespace's checkpoints; none where bridgescale's CRDs are not installed."""
    try:
        return _list_checkpoints(api, namespace)
    except NotFound:
        return []


def _list_checkpoints(api: client.ApiClient, namespace: str) -> list[Checkpoint]:
    with api_errors():
        found = as_object(
            client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL
            )
        )
    return [_checkpoint(item) for item in found.get("items", [])]


def save_checkpoint(api: client.ApiClient, ref: WorkloadRef, checkpoint: Checkpoint) -> None:
    """Server-side apply: the recommender is the only writer of its checkpoints."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": checkpoint_name(ref),
            "namespace": ref.namespace,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            "ownerReferences": [
                {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "uid": ref.uid}
            ],
        },
        "spec": {
            "targetRef": ref.target_ref(),
            "model": checkpoint.model,
            "savedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "containers": [
                {
                    "containerName": c.container,
                    "historyEnd": c.history_end,
                    "oomFloor": c.oom_floor,
                    "oomTime": c.oom_time,
                    "committedHour": c.committed_hour,
                    "state": dict(c.state),
                }
                for c in checkpoint.containers
            ],
        },
    }
    with api_errors():
        apply(api, [body])
