"""Discovery: the namespaces that opted in, and the workloads in them.

A workload is what a person scales: a Deployment (its pods reach it through a ReplicaSet), a
StatefulSet, or a bare Pod that no controller owns. Pods owned by anything else (a Job, a
DaemonSet, a ReplicaSet without a Deployment) are not tracked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from bridgescale.kube import api_errors, listed_items
from bridgescale.quantity import POD

# The API handle other layers pass back in, so that they never import kubernetes themselves.
ApiClient = client.ApiClient

OPT_IN_LABEL = "bridgescale.dev/enabled"

TRACKED_KINDS = ("Deployment", "StatefulSet", "Pod")


@dataclass(frozen=True)
class WorkloadRef:
    namespace: str
    kind: str
    name: str
    api_version: str
    uid: str

    def target_ref(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class ContainerSpec:
    """A container as the workload's pod template (or the bare pod) declares it."""

    name: str
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    claims: tuple[str, ...] = ()  # names of the pod's resource claims the container uses


@dataclass(frozen=True)
class Workload:
    ref: WorkloadRef
    annotations: Mapping[str, str]
    containers: tuple[ContainerSpec, ...]
    pods: tuple[str, ...] = ()
    envelope: ContainerSpec | None = None  # pod-level resources, named POD, if set

    def sized(self) -> tuple[ContainerSpec, ...]:
        """What gets a recommendation: the envelope if the pod sets one, and every container
        except those an envelope covers that set no resources of their own."""
        if self.envelope is None:
            return self.containers
        own = tuple(c for c in self.containers if c.requests or c.limits)
        return (*own, self.envelope)


def opted_in_namespaces(api: client.ApiClient) -> list[str]:
    """Names of the namespaces labelled `bridgescale.dev/enabled=true`, read afresh each call."""
    with api_errors():
        found = client.CoreV1Api(api).list_namespace(label_selector=f"{OPT_IN_LABEL}=true")
    return sorted(str(n.metadata.name) for n in found.items if n.metadata is not None)


def all_namespaces(api: client.ApiClient) -> list[str]:
    with api_errors():
        found = client.CoreV1Api(api).list_namespace()
    return sorted(str(n.metadata.name) for n in found.items if n.metadata is not None)


def _containers(pod_spec: Mapping[str, Any]) -> tuple[ContainerSpec, ...]:
    containers = []
    for container in pod_spec.get("containers", []):
        resources = container.get("resources") or {}
        claims = tuple(c["name"] for c in resources.get("claims") or [] if "name" in c)
        containers.append(
            ContainerSpec(
                name=container["name"],
                requests=dict(resources.get("requests") or {}),
                limits=dict(resources.get("limits") or {}),
                claims=claims,
            )
        )
    return tuple(containers)


def _envelope(pod_spec: Mapping[str, Any]) -> ContainerSpec | None:
    resources = pod_spec.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not requests and not limits:
        return None
    return ContainerSpec(POD, dict(requests), dict(limits))


def _controller(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for owner in obj["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return dict(owner)
    return None


def _ref(namespace: str, kind: str, api_version: str, obj: Mapping[str, Any]) -> WorkloadRef:
    meta = obj["metadata"]
    return WorkloadRef(namespace, kind, meta["name"], api_version, meta["uid"])


def list_workloads(api: client.ApiClient, namespace: str) -> list[Workload]:
    """Every Deployment, StatefulSet and bare Pod of the namespace, with its pods' names."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    with api_errors():
        pods = listed_items(core.list_namespaced_pod(namespace, _preload_content=False))
        replica_sets = listed_items(
            apps.list_namespaced_replica_set(namespace, _preload_content=False)
        )
        deployments = listed_items(
            apps.list_namespaced_deployment(namespace, _preload_content=False)
        )
        stateful_sets = listed_items(
            apps.list_namespaced_stateful_set(namespace, _preload_content=False)
        )

    # A ReplicaSet's pods belong to the Deployment that controls the ReplicaSet.
    deployment_of = {}
    for replica_set in replica_sets:
        owner = _controller(replica_set)
        if owner and owner.get("kind") == "Deployment":
            deployment_of[replica_set["metadata"]["name"]] = owner["name"]

    pods_of: dict[tuple[str, str], list[str]] = {}
    bare = []
    for pod in pods:
        owner = _controller(pod)
        if owner is None:
            bare.append(pod)
            continue
        kind, name = owner.get("kind"), owner.get("name", "")
        if kind == "ReplicaSet" and name in deployment_of:
            kind, name = "Deployment", deployment_of[name]
        pods_of.setdefault((str(kind), name), []).append(pod["metadata"]["name"])

    workloads = []
    for kind, objects in (("Deployment", deployments), ("StatefulSet", stateful_sets)):
        for obj in objects:
            workloads.append(
                Workload(
                    ref=_ref(namespace, kind, "apps/v1", obj),
                    annotations=dict(obj["metadata"].get("annotations") or {}),
                    containers=_containers(obj["spec"]["template"].get("spec", {})),
                    pods=tuple(sorted(pods_of.get((kind, obj["metadata"]["name"]), []))),
                    envelope=_envelope(obj["spec"]["template"].get("spec", {})),
                )
            )
    for pod in bare:
        workloads.append(
            Workload(
                ref=_ref(namespace, "Pod", "v1", pod),
                annotations=dict(pod["metadata"].get("annotations") or {}),
                containers=_containers(pod["spec"]),
                pods=(pod["metadata"]["name"],),
                envelope=_envelope(pod["spec"]),
            )
        )
    return sorted(workloads, key=lambda w: (w.ref.kind, w.ref.name))
