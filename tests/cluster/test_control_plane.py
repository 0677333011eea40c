"""The local control plane is the real one: its controllers, admission, RBAC and validation act."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bridgescale import kube
from bridgescale.localcluster.environment import LocalEnvironment
from tests.cluster.waiting import eventually


def pod_manifest(name: str, cpu: str = "100m", memory: str = "64Mi", **spec: Any) -> dict[str, Any]:
    """A Guaranteed pod of one container."""
    resources = {"cpu": cpu, "memory": memory}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": "bridge",
                    "image": "bridgescale.dev/sim-bridge:1",
                    "resources": {"requests": resources, "limits": resources},
                }
            ],
            **spec,
        },
    }


def test_server_is_a_recent_kubernetes(api: client.ApiClient) -> None:
    version = client.VersionApi(api).get_code()
    minor = int(version.minor.rstrip("+"))
    print(f"server version {version.git_version}")
    assert version.major == "1"
    assert minor >= 36
    names = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
    assert {"default", "kube-system"} <= set(names)


def test_deployment_gets_replicaset_and_pods(api: client.ApiClient, namespace: str) -> None:
    labels = {"app": "router"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "router"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_manifest("router")["spec"],
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)

    replica_sets = eventually(
        lambda: client.AppsV1Api(api).list_namespaced_replica_set(namespace).items,
        what="the controller-manager to create a ReplicaSet",
    )
    assert replica_sets[0].metadata.owner_references[0].kind == "Deployment"

    def two_pods() -> list[client.V1Pod] | None:
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
        return pods if len(pods) == 2 else None

    pods = eventually(two_pods, what="2 pods")
    owners = {pod.metadata.owner_references[0].name for pod in pods}
    assert owners == {replica_sets[0].metadata.name}


def test_claim_template_generates_a_claim(api: client.ApiClient, namespace: str) -> None:
    resource = client.ResourceV1Api(api)
    class_name = f"gpu-{namespace}"
    resource.create_device_class(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": class_name},
            "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.sim'"}}]},
        }
    )
    try:
        resource.create_namespaced_resource_claim_template(
            namespace,
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaimTemplate",
                "metadata": {"name": "gpu-slice"},
                "spec": {
                    "spec": {
                        "devices": {
                            "requests": [
                                {"name": "gpu", "exactly": {"deviceClassName": class_name}}
                            ]
                        }
                    }
                },
            },
        )
        pod = pod_manifest(
            "pointcloud", resourceClaims=[{"name": "gpu", "resourceClaimTemplateName": "gpu-slice"}]
        )
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod)

        claims = eventually(
            lambda: resource.list_namespaced_resource_claim(namespace).items,
            what="the resourceclaim controller to generate a claim",
        )
        claim = claims[0]
        assert claim.metadata.owner_references[0].name == "pointcloud"
        assert claim.metadata.annotations["resource.kubernetes.io/pod-claim-name"] == "gpu"
        status = eventually(
            lambda: (
                client.CoreV1Api(api)
                .read_namespaced_pod("pointcloud", namespace)
                .status.resource_claim_statuses
            ),
            what="the pod's resourceClaimStatuses",
        )
        assert status[0].resource_claim_name == claim.metadata.name
    finally:
        resource.delete_device_class(class_name)


def _report_running(api: client.ApiClient, namespace: str, pod_name: str) -> None:
    """Report a pod that names its node running and ready, as that node's kubelet would."""
    core = client.CoreV1Api(api)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    core.patch_namespaced_pod_status(
        pod_name,
        namespace,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                ],
            }
        },
    )


def test_eviction_refused_by_disruption_budget(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    node = f"node-{namespace}"
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    try:
        # The pod names its node (a node no simulator runs), so no scheduler places it elsewhere.
        core.create_namespaced_pod(namespace, pod_manifest("bridge-0", nodeName=node))
        _report_running(api, namespace, "bridge-0")
        client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
            namespace,
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "bridges"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "bridge-0"}}},
            },
        )
        eventually(
            lambda: (
                (
                    b := client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
                        "bridges", namespace
                    )
                ).status.current_healthy
                == 1
                and b.status.observed_generation == b.metadata.generation
            ),
            what="the disruption controller to count the healthy pod",
        )
        eviction = client.V1Eviction(
            metadata=client.V1ObjectMeta(name="bridge-0", namespace=namespace)
        )
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod_eviction("bridge-0", namespace, eviction)
        error = kube.translate(refused.value)
        print(f"eviction refused: {error}")
        assert isinstance(error, kube.TooManyRequests)
        assert "disruption budget" in error.message
        assert core.read_namespaced_pod("bridge-0", namespace).metadata.deletion_timestamp is None
    finally:
        core.delete_node(node)


def _grant_resize_only(api: client.ApiClient, namespace: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "resize-only"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "resize-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "resize-only",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


def _wait_for_rbac(api: client.ApiClient, namespace: str, account: str) -> None:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace}:{account}",
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "patch",
                "resource": "pods",
                "subresource": "resize",
            },
        },
    }
    eventually(
        lambda: client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed,
        what="the RoleBinding to take effect",
    )


def test_resize_needs_patch_on_pods_resize_and_nothing_more(
    local_cluster: LocalEnvironment, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    account = "updater"
    core.create_namespaced_service_account(
        namespace, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}
    )
    core.create_namespaced_pod(namespace, pod_manifest("bridge-0"))
    kubeconfig = local_cluster.mint_kubeconfig(namespace, account)
    bigger = {
        "spec": {
            "containers": [
                {
                    "name": "bridge",
                    "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "200m"}},
                }
            ]
        }
    }

    with kube.new_client(kubeconfig) as as_updater:
        updater = client.CoreV1Api(as_updater)
        with pytest.raises(ApiException) as denied:
            updater.patch_namespaced_pod_resize("bridge-0", namespace, bigger)
        assert isinstance(kube.translate(denied.value), kube.Forbidden)

        _grant_resize_only(api, namespace, account)
        _wait_for_rbac(api, namespace, account)
        resized = updater.patch_namespaced_pod_resize("bridge-0", namespace, bigger)
        assert resized.spec.containers[0].resources.requests["cpu"] == "200m"
        assert resized.metadata.generation == 2

        pod = updater.read_namespaced_pod("bridge-0", namespace)
        pod.metadata.labels["tampered"] = "yes"
        with pytest.raises(ApiException) as no_update:
            updater.replace_namespaced_pod("bridge-0", namespace, pod)
        assert isinstance(kube.translate(no_update.value), kube.Forbidden)


def test_resize_that_changes_qos_class_is_invalid(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, pod_manifest("bridge-0"))
    burstable = {
        "spec": {"containers": [{"name": "bridge", "resources": {"requests": {"cpu": "50m"}}}]}
    }

    with pytest.raises(ApiException) as refused:
        core.patch_namespaced_pod_resize("bridge-0", namespace, burstable)

    error = kube.translate(refused.value)
    print(f"resize refused: {error}")
    assert isinstance(error, kube.Invalid)
    assert "Pod QOS Class may not change as a result of resizing" in error.message
    details = json.loads(refused.value.body)["details"]["causes"]
    assert details[0]["field"] == "spec"
