"""Decisions from a pod's resize conditions, its workload's mode, and the cool-down."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from bridgescale.policy import UpdateMode, WorkloadPolicy
from bridgescale.quantity import GiB
from bridgescale.updater.decide import (
    Recreate,
    RecreateReason,
    ResizeState,
    Skip,
    Wait,
    decide,
    resize_outcome,
)
from bridgescale.updater.pods import Condition, Container, Pod, QoSClass, pod_from_json
from bridgescale.updater.recommendations import ContainerRecommendation
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import Resize

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
SETTINGS = UpdaterSettings()
UP = {"router": ContainerRecommendation("router", {"cpu": 2.0, "memory": 1.0 * GiB})}
DOWN = {"router": ContainerRecommendation("router", {"cpu": 0.5, "memory": 1.0 * GiB})}


def _pod(**changes: object) -> Pod:
    amounts = {"cpu": 1.0, "memory": 1.0 * GiB}
    container = Container("router", amounts, amounts)
    pod = Pod(
        "ns", "bridge-0", "u", "7", 2, 2, QoSClass.GUARANTEED, (container,),
        applied={"router": container}, phase="Running", node_name="node-1",
    )  # fmt: skip
    return replace(pod, **changes)


def _decide(pod: Pod, mode: UpdateMode = UpdateMode.IN_PLACE_OR_RECREATE, recs=UP):  # type: ignore[no-untyped-def]
    return decide(
        pod, recommendations=recs, policy=WorkloadPolicy(mode=mode), usage={}, now=NOW,
        settings=SETTINGS,
    )  # fmt: skip


def _pending(reason: str, minutes: int) -> dict[str, Condition]:
    since = NOW - dt.timedelta(minutes=minutes)
    return {"PodResizePending": Condition("PodResizePending", reason, "", since)}


def test_modes_off_and_initial_never_touch_a_running_pod() -> None:
    assert isinstance(_decide(_pod(), UpdateMode.OFF), Skip)
    assert isinstance(_decide(_pod(), UpdateMode.INITIAL), Skip)
    assert isinstance(_decide(_pod(), UpdateMode.IN_PLACE), Resize)


def test_deferred_past_the_timeout_recreates_only_when_the_mode_allows() -> None:
    assert isinstance(_decide(_pod(conditions=_pending("Deferred", 4))), Wait)
    late = _pod(conditions=_pending("Deferred", 6))
    decision = _decide(late)
    assert isinstance(decision, Recreate)
    assert decision.reason is RecreateReason.DEFERRED_TIMEOUT
    assert isinstance(_decide(late, UpdateMode.IN_PLACE), Wait)


def test_infeasible_recreates_at_once_and_an_unobserved_generation_waits() -> None:
    decision = _decide(_pod(conditions=_pending("Infeasible", 0)))
    assert isinstance(decision, Recreate) and decision.reason is RecreateReason.INFEASIBLE
    unobserved = _pod(generation=3, observed_generation=2, conditions=_pending("Infeasible", 0))
    assert resize_outcome(unobserved).state is ResizeState.UNOBSERVED
    assert isinstance(_decide(unobserved), Wait)


def test_a_kubelet_error_reverts_to_the_applied_size() -> None:
    small = Container(
        "router", {"cpu": 1.0, "memory": 0.5 * GiB}, {"cpu": 1.0, "memory": 0.5 * GiB}
    )
    applied = _pod().containers[0]
    error = Condition("PodResizeInProgress", "Error", "memory limit below usage", NOW)
    pod = _pod(containers=(small,), applied={"router": applied}, conditions={error.type: error})
    decision = _decide(pod)
    assert isinstance(decision, Resize)
    assert decision.changes[0].limits["memory"] == 1.0 * GiB


def test_cool_down_holds_scale_downs_but_not_scale_ups() -> None:
    recent = _pod(last_resize=NOW - dt.timedelta(minutes=1))
    assert isinstance(_decide(recent), Resize)
    assert isinstance(_decide(recent, recs=DOWN), Wait)


def test_during_the_cool_down_only_what_rises_changes() -> None:
    """The router would shrink and its sidecar grow: within the cool-down only the sidecar
    grows, and the router keeps its size."""
    amounts = {"cpu": 1.0, "memory": 1.0 * GiB}
    sidecar = Container("telemetry", amounts, amounts)
    pod = _pod(last_resize=NOW - dt.timedelta(minutes=1))
    pod = replace(pod, containers=(*pod.containers, sidecar),
                  applied={**pod.applied, "telemetry": sidecar})  # fmt: skip
    mixed = {**DOWN, "telemetry": ContainerRecommendation("telemetry", {"cpu": 2.0})}

    decision = _decide(pod, recs=mixed)

    assert isinstance(decision, Resize)
    assert [c.container for c in decision.changes] == ["telemetry"]
    assert decision.changes[0].limits["cpu"] == 2.0
    settled = replace(pod, last_resize=NOW - dt.timedelta(hours=1))
    assert sorted(c.container for c in _decide(settled, recs=mixed).changes) == [
        "router",
        "telemetry",
    ]


def test_pod_from_json_reads_conditions_generation_and_the_last_resize() -> None:
    raw = {
        "metadata": {
            "namespace": "ns", "name": "bridge-0", "uid": "u", "resourceVersion": "9",
            "generation": 2,
            "managedFields": [{"subresource": "resize", "time": "2026-12-03T11:59:00Z"}],
            "ownerReferences": [{"kind": "StatefulSet", "name": "bridge", "controller": True}],
        },
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "router", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}
        ]},
        "status": {"phase": "Running", "qosClass": "Burstable", "observedGeneration": 2,
                   "conditions": [{"type": "PodResizePending", "status": "True",
                                   "reason": "Deferred",
                                   "lastTransitionTime": "2026-12-03T11:50:00Z"}]},
    }  # fmt: skip
    pod = pod_from_json(raw)
    assert pod.last_resize == NOW - dt.timedelta(minutes=1)
    assert pod.owner is not None and pod.owner.kind == "StatefulSet"
    outcome = resize_outcome(pod)
    assert outcome.state is ResizeState.DEFERRED
    assert outcome.since == NOW - dt.timedelta(minutes=10)
