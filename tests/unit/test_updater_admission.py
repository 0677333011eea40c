"""The webhook's patch for a new pod: recommended sizes in the pod's own QoS class, claims
pointed at the chosen template, and the workload a pod belongs to."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgescale.policy import UpdateMode, WorkloadPolicy
from bridgescale.quantity import GiB, MiB, parse
from bridgescale.updater.admission import Sizing, mutate, review_response, sized
from bridgescale.updater.apply import CLAIMS_REFUSAL, ResizeResult, _refusal
from bridgescale.updater.placement import WorkloadKey, node_with_room, workload_of
from bridgescale.updater.pods import Container, Owner, Pod, QoSClass
from bridgescale.updater.ports import Refused
from bridgescale.updater.recommendations import ContainerRecommendation, Recommendation
from bridgescale.updater.sizing import Resize

TARGET = {"cpu": 2.0, "memory": 1.0 * GiB}
RECOMMENDATION = Recommendation(
    "ns", "rr", "Deployment", "bridge", {"router": ContainerRecommendation("router", TARGET)}
)


def _pod(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"generateName": "bridge-"},
        "spec": {
            "containers": [{"name": "router", "resources": resources}],
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "mig-1g"}],
        },
    }


def test_guaranteed_pod_gets_requests_and_limits_and_the_new_template() -> None:
    pod = _pod(
        {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
    )
    sizing = Sizing(RECOMMENDATION, claim_templates={"gpu": "pointcloud-gpu-20480mi-x"})
    after = sized(pod, sizing)
    assert after["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    assert (
        after["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
        == "pointcloud-gpu-20480mi-x"
    )


def test_mode_off_and_best_effort_pods_are_left_alone() -> None:
    guaranteed = _pod({"limits": {"cpu": "1", "memory": "512Mi"}})
    assert mutate(guaranteed, Sizing(RECOMMENDATION, WorkloadPolicy(mode=UpdateMode.OFF))) == []
    assert mutate(_pod({}), Sizing(RECOMMENDATION)) == []


@given(
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.integers(64, 4096),
    st.integers(0, 4096),
)
def test_burstable_gets_the_target_as_limit_and_keeps_its_request_ratio_below(
    cpu_m: int, extra_cpu_m: int, memory_mi: int, extra_memory_mi: int
) -> None:
    resources = {
        "requests": {"cpu": f"{cpu_m}m", "memory": f"{memory_mi}Mi"},
        "limits": {
            "cpu": f"{cpu_m + extra_cpu_m}m",
            "memory": f"{memory_mi + extra_memory_mi}Mi",
        },
    }
    after = sized(_pod(resources), Sizing(RECOMMENDATION))["spec"]["containers"][0]["resources"]
    assert after["limits"] == {"cpu": "2", "memory": "1Gi"}
    cpu = parse(after["requests"]["cpu"], "cpu")
    assert cpu < 2.0  # still Burstable
    assert cpu == pytest.approx(2.0 * cpu_m / (cpu_m + extra_cpu_m), abs=0.001)
    memory = parse(after["requests"]["memory"], "memory")
    ratio = memory_mi / (memory_mi + extra_memory_mi)
    assert memory == pytest.approx(1024 * ratio * MiB, abs=MiB)
    assert (memory < GiB) == (extra_memory_mi > 0)


def test_burstable_without_a_limit_gets_the_target_as_request() -> None:
    pod = _pod({"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}})
    after = sized(pod, Sizing(RECOMMENDATION))["spec"]["containers"][0]["resources"]
    assert after == {"requests": {"cpu": "2", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}


def test_review_response_allows_and_carries_a_json_patch() -> None:
    answer = review_response("u1", [{"op": "replace", "path": "/x", "value": 1}])["response"]
    assert answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == [
        {"op": "replace", "path": "/x", "value": 1}
    ]


def test_workload_of_a_replicaset_pod_is_its_deployment() -> None:
    owner = Owner("ReplicaSet", "bridge-7d9f")
    labels = {"pod-template-hash": "7d9f"}
    pod = Pod("ns", "bridge-7d9f-abc", "u", "1", 1, 1, QoSClass.BURSTABLE, (),
              owner=owner, labels=labels)  # fmt: skip
    assert workload_of(pod) == WorkloadKey("ns", "Deployment", "bridge")


def test_a_node_has_room_when_its_other_pods_leave_enough() -> None:
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}}
    pods = [
        {"metadata": {"uid": "leaving"}, "spec": {"nodeName": "n1", "containers": [
            {"resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]}, "status": {}},
        {"metadata": {"uid": "other"}, "spec": {"nodeName": "n1", "containers": [
            {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}, "status": {}},
    ]  # fmt: skip
    assert node_with_room([node], pods, {"cpu": 3.0, "memory": 1.0 * GiB}, "leaving") == "n1"
    assert node_with_room([node], pods, {"cpu": 3.5, "memory": 1.0 * GiB}, "leaving") is None


def _node(name: str, labels: dict[str, str], taints: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"allocatable": {"cpu": "8", "memory": "16Gi"}},
    }


GPU_TAINT = {"key": "gpu", "value": "true", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "plain"),
        ({"nodeSelector": {"zone": "b"}}, None),  # the taint is not tolerated
        ({"nodeSelector": {"zone": "c"}}, None),
        ({"tolerations": [{"key": "gpu", "operator": "Exists"}], "nodeSelector": {"zone": "b"}},
         "tainted"),
        ({"tolerations": [{"key": "gpu", "value": "false"}], "nodeSelector": {"zone": "b"}},
         None),
        ({"tolerations": [{"operator": "Exists"}], "nodeSelector": {"zone": "b"}}, "tainted"),
        ({"tolerations": [{"key": "gpu", "value": "true", "effect": "NoExecute"}],
          "nodeSelector": {"zone": "b"}}, None),
        ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}},
          "tolerations": [{"key": "gpu", "operator": "Exists"}]}, "tainted"),
        ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["plain"]}]}]}}}},
         "plain"),
        ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "cores", "operator": "Gt", "values": ["16"]}]}]}}}}, None),
    ],
)  # fmt: skip
def test_room_is_found_only_on_nodes_the_replacement_may_use(
    spec: dict[str, Any], expected: str | None
) -> None:
    nodes = [
        _node("plain", {"zone": "a", "cores": "8"}, []),
        _node("tainted", {"zone": "b", "cores": "8"}, [GPU_TAINT]),
    ]
    assert node_with_room(nodes, [], {"cpu": 1.0}, "leaving", spec) == expected


def test_an_unschedulable_node_has_no_room() -> None:
    cordoned = _node("plain", {}, [])
    cordoned["spec"]["unschedulable"] = True
    assert node_with_room([cordoned], [], {"cpu": 1.0}, "leaving") is None


def test_the_api_servers_refusal_of_a_container_with_claims_is_told_apart() -> None:
    amounts = {"cpu": 1.0, "memory": 256.0 * MiB}
    claimed = Container("router", amounts, amounts, has_claims=True)
    pod = Pod("ns", "p", "u", "1", 1, 1, QoSClass.GUARANTEED, (claimed,))
    refusal = Refused("Invalid", f'Pod "p" is invalid: spec: Forbidden: {CLAIMS_REFUSAL}')
    assert _refusal(Resize(pod), refusal).result is ResizeResult.CLAIMS_NOT_RESIZABLE
    other = Refused("Invalid", "Pod QOS Class may not change as a result of resizing")
    assert _refusal(Resize(pod), other).result is ResizeResult.REFUSED
