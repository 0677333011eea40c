"""What the updater's cluster tests share: its service account with the RBAC from deploy/, an
opted-in namespace, a node, recommendations written by hand, and a stand-in for the kubelet's
status writes (bind, run, report a resize) until the node simulator runs the pods."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster.settings import find_project_root
from tests.cluster.waiting import eventually

T = TypeVar("T")
GROUP, VERSION, PLURAL = "bridgescale.dev", "v1alpha1", "resourcerecommendations"
UPDATER_NAMESPACE, UPDATER_ACCOUNT = "bridgescale-system", "bridgescale-updater"


def apply_updater_rbac(api: client.ApiClient) -> None:
    deploy = find_project_root(Path(__file__)) / "deploy"
    kube.apply(
        api,
        kube.load_manifests(deploy / "system" / "namespace.yaml", deploy / "updater" / "rbac.yaml"),
    )
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{UPDATER_NAMESPACE}:{UPDATER_ACCOUNT}",
            "resourceAttributes": {"verb": "patch", "resource": "pods", "subresource": "resize"},
        },
    }
    eventually(
        lambda: client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed,
        what="the updater's ClusterRoleBinding to take effect",
    )


def opt_in(api: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"labels": {"bridgescale.dev/enabled": "true"}}}
    )


def create_node(api: client.ApiClient, name: str, cpu: str = "8", memory: str = "16Gi") -> None:
    """A node no simulator runs: the tests write its pods' status themselves."""
    core = client.CoreV1Api(api)
    labels = {"kubernetes.io/hostname": name}
    core.create_node(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
    )
    capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
    core.patch_node_status(name, {"status": {"capacity": capacity, "allocatable": capacity}})


def container(name: str, cpu: str, memory: str, *, limit_cpu: str | None = None) -> dict[str, Any]:
    limits = {"cpu": limit_cpu or cpu, "memory": memory}
    return {
        "name": name,
        "image": "bridgescale.dev/sim-bridge:1",
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"},
        ],
    }


def bare_pod(name: str, node: str, cpu: str = "500m", memory: str = "256Mi") -> dict[str, Any]:
    """A Guaranteed bridge pod placed on `node` directly (no scheduler, no simulator)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [container("router", cpu, memory)]},
    }


def deployment_of(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A Deployment of one replica of `pod_spec`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def deployment(name: str, node: str, cpu: str = "500m", memory: str = "256Mi") -> dict[str, Any]:
    """A Guaranteed bridge Deployment kept on `node`."""
    spec = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "containers": [container("router", cpu, memory)],
    }
    return deployment_of(name, spec)


def recommend(
    api: client.ApiClient,
    namespace: str,
    kind: str,
    name: str,
    target: dict[str, str],
    container: str = "router",
    pod_target: dict[str, str] | None = None,
) -> None:
    """A ResourceRecommendation with `target` for `container` (none if empty), and
    `pod_target` as the envelope of pods with pod-level resources."""
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ResourceRecommendation",
        "metadata": {"name": f"{kind.lower()}-{name}"},
        "spec": {"targetRef": {"apiVersion": "v1", "kind": kind, "name": name}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    recommendations = [{"containerName": container, "target": target}] if target else []
    status: dict[str, Any] = {"status": {"containerRecommendations": recommendations}}
    if pod_target:
        status["status"]["podRecommendation"] = {"target": pod_target}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, body["metadata"]["name"], status
    )


def running_bare_pod(
    api: client.ApiClient, namespace: str, node: str, target: dict[str, str]
) -> str:
    """A bare bridge pod running on `node`, recommended `target`; its uid."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, bare_pod("bridge-0", node))
    run_on_node(api, namespace, "bridge-0", node)
    recommend(api, namespace, "Pod", "bridge-0", target)
    return str(core.read_namespaced_pod("bridge-0", namespace).metadata.uid)


def _stamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_statuses(pod: client.V1Pod, applied: dict[str, Any] | None) -> list[dict[str, Any]]:
    statuses = []
    for spec in pod.spec.containers:
        resources = applied or {
            "requests": spec.resources.requests,
            "limits": spec.resources.limits,
        }
        statuses.append(
            {
                "name": spec.name,
                "image": spec.image,
                "imageID": f"sim://{spec.image}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": _stamp()}},
                "resources": resources,
                "allocatedResources": resources["requests"],
            }
        )
    return statuses


def run_on_node(api: client.ApiClient, namespace: str, name: str, node: str) -> None:
    """Bind the pod (unless the scheduler did) and report it running with its spec's
    resources, as a kubelet does."""
    core = client.CoreV1Api(api)
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name=name),
        target=client.V1ObjectReference(kind="Node", name=node),
    )
    try:
        core.create_namespaced_binding(namespace, binding, _preload_content=False)
    except client.ApiException as error:
        if error.status != 409:  # 409: the scheduler bound it first
            raise
    report(api, namespace, name)


def report(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    pending: str | None = None,
    since: dt.datetime | None = None,
    applied: dict[str, Any] | None = None,
) -> None:
    """Write the pod's status as a kubelet does after a resize: observedGeneration, the applied
    resources (the spec's unless `applied`), and a PodResizePending condition if `pending`."""
    core = client.CoreV1Api(api)
    pod = core.read_namespaced_pod(name, namespace)
    conditions = [
        {"type": "Ready", "status": "True", "lastTransitionTime": _stamp()},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp()},
    ]
    if pending:
        conditions.append(
            {
                "type": "PodResizePending",
                "status": "True",
                "reason": pending,
                "message": f"simulated: {pending}",
                "lastTransitionTime": _stamp(since),
            }
        )
    status = {
        "phase": "Running",
        "observedGeneration": pod.metadata.generation,
        "conditions": conditions,
        "containerStatuses": _container_statuses(pod, applied),
    }
    core.patch_namespaced_pod_status(name, namespace, {"status": status})
