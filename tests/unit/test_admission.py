"""The simulated kubelet's resize decisions, against upstream v1.37.2's rules and messages."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from bridgescale.simulator.admission import (
    STATIC_CPU_MANAGER_MESSAGE,
    STATIC_MEMORY_MANAGER_MESSAGE,
    SWAP_MESSAGE,
    SYSTEM_CRITICAL_PRIORITY,
    Admitted,
    NodeCapacity,
    Pending,
    PendingResize,
    RetrySchedule,
    admit_resize,
    first_shortage,
    increases_requests,
    limited_swap,
    memory_decrease_error,
    retry_order,
)
from bridgescale.simulator.resources import ContainerResources, Envelope, PodResources

MI = 1024 * 1024
NODE = NodeCapacity(cpu_millis=4000, memory_bytes=4 * 1024 * MI, pods=110)


def pod(*containers: ContainerResources) -> PodResources:
    return PodResources(tuple(containers))


def guaranteed(cpu: str, memory: str, name: str = "c") -> ContainerResources:
    both = {"cpu": cpu, "memory": memory}
    return ContainerResources(name, requests=both, limits=both)


def requests(cpu: str, memory: str, name: str = "c") -> ContainerResources:
    return ContainerResources(name, requests={"cpu": cpu, "memory": memory})


def test_qos_classes() -> None:
    assert pod(guaranteed("1", "1Gi")).qos_class() == "Guaranteed"
    assert pod(requests("1", "1Gi")).qos_class() == "Burstable"
    assert pod(ContainerResources("c")).qos_class() == "BestEffort"
    limits_only = ContainerResources("c", limits={"cpu": "1", "memory": "1Gi"})
    assert limits_only.request("cpu") == 1000
    assert pod(limits_only).qos_class() == "Guaranteed"


def test_pod_requests_count_sidecars_and_the_largest_init_container() -> None:
    sidecar = ContainerResources("s", "sidecar", requests={"cpu": "100m"})
    init = ContainerResources("i", "init", requests={"cpu": "2"})
    regular = ContainerResources("c", requests={"cpu": "500m"})
    assert pod(sidecar, regular).requests("cpu") == 600
    assert pod(sidecar, init, regular).requests("cpu") == 2100
    assert pod(init, sidecar, regular).requests("cpu") == 2000


def test_shortage_message_is_upstreams() -> None:
    others = [pod(requests("2", "1Gi"))]
    message = first_shortage(NODE, pod(requests("5", "1Gi")), others)
    assert message == (
        "Node didn't have enough resource: cpu, requested: 5000, used: 2000, capacity: 4000"
    )
    assert first_shortage(NODE, pod(requests("1", "3500Mi")), others) == (
        "Node didn't have enough resource: memory, requested: 3670016000, used: 1073741824, "
        "capacity: 4294967296"
    )


def test_static_cpu_manager_makes_a_guaranteed_cpu_change_infeasible() -> None:
    static = NodeCapacity(4000, 4 * 1024 * MI, 110, static_cpu_manager=True)
    before = pod(guaranteed("1", "1Gi"))
    assert admit_resize(static, pod(guaranteed("2", "1Gi")), before, []) == Pending(
        "Infeasible", STATIC_CPU_MANAGER_MESSAGE
    )
    assert admit_resize(static, pod(guaranteed("1", "2Gi")), before, []) == Admitted()
    burstable = pod(requests("1", "1Gi"))
    assert admit_resize(static, pod(requests("2", "1Gi")), burstable, []) == Admitted()


def test_static_memory_manager_makes_a_guaranteed_memory_change_infeasible() -> None:
    static = NodeCapacity(4000, 4 * 1024 * MI, 110, static_memory_manager=True)
    before = pod(guaranteed("1", "1Gi"))
    assert admit_resize(static, pod(guaranteed("1", "2Gi")), before, []) == Pending(
        "Infeasible", STATIC_MEMORY_MANAGER_MESSAGE
    )
    assert admit_resize(static, pod(guaranteed("2", "1Gi")), before, []) == Admitted()
    burstable = pod(requests("1", "1Gi"))
    assert admit_resize(static, pod(requests("1", "2Gi")), burstable, []) == Admitted()


def test_both_static_managers_refuse_for_cpu_first() -> None:
    both = NodeCapacity(
        4000, 4 * 1024 * MI, 110, static_cpu_manager=True, static_memory_manager=True
    )
    verdict = admit_resize(both, pod(guaranteed("2", "2Gi")), pod(guaranteed("1", "1Gi")), [])
    assert verdict == Pending("Infeasible", STATIC_CPU_MANAGER_MESSAGE)


SWAP = NodeCapacity(4000, 4 * 1024 * MI, 110, swap=True)


def burstable_memory(request: str, limit: str | None = None, restart: bool = False) -> PodResources:
    policy = {"memory": "RestartContainer" if restart else "NotRequired"}
    limits = {"memory": limit} if limit else {}
    container = ContainerResources(
        "c", requests={"cpu": "1", "memory": request}, limits=limits, resize_policy=policy
    )
    return pod(container)


def test_swap_makes_a_memory_request_change_of_a_swapping_container_infeasible() -> None:
    verdict = admit_resize(SWAP, burstable_memory("2Gi"), burstable_memory("1Gi"), [])
    assert verdict == Pending("Infeasible", SWAP_MESSAGE)
    with_limit = admit_resize(
        SWAP, burstable_memory("2Gi", "3Gi"), burstable_memory("1Gi", "3Gi"), []
    )
    assert with_limit == Pending("Infeasible", SWAP_MESSAGE)


def test_swap_allows_what_upstream_allows() -> None:
    # A limit change alone, a restarting container, a critical pod, and a node without swap.
    assert admit_resize(
        SWAP, burstable_memory("1Gi", "3Gi"), burstable_memory("1Gi", "2Gi"), []
    ) == (Admitted())
    restarting = admit_resize(
        SWAP, burstable_memory("2Gi", restart=True), burstable_memory("1Gi", restart=True), []
    )
    assert restarting == Admitted()
    critical = admit_resize(
        SWAP, burstable_memory("2Gi"), burstable_memory("1Gi"), [], SYSTEM_CRITICAL_PRIORITY
    )
    assert critical == Admitted()
    assert admit_resize(NODE, burstable_memory("2Gi"), burstable_memory("1Gi"), []) == Admitted()
    # Guaranteed containers never swap.
    guaranteed_resize = admit_resize(
        SWAP, pod(guaranteed("1", "2Gi")), pod(guaranteed("1", "1Gi")), []
    )
    assert guaranteed_resize == Admitted()


def test_a_container_swaps_only_in_a_burstable_pod_below_its_memory_limit() -> None:
    no_memory = ContainerResources("c", requests={"cpu": "1"})
    equal = ContainerResources(
        "c", requests={"cpu": "1", "memory": "1Gi"}, limits={"memory": "1Gi"}
    )
    below = burstable_memory("1Gi", "2Gi").containers[0]
    assert limited_swap(pod(below), below)
    assert limited_swap(burstable_memory("1Gi"), burstable_memory("1Gi").containers[0])
    assert not limited_swap(pod(no_memory), no_memory)
    assert not limited_swap(pod(equal), equal)
    assert not limited_swap(pod(guaranteed("1", "1Gi")), guaranteed("1", "1Gi"))


def test_infeasible_is_decided_before_capacity() -> None:
    static = NodeCapacity(4000, 4 * 1024 * MI, 110, static_cpu_manager=True)
    others = [pod(requests("3", "1Gi"))]
    verdict = admit_resize(static, pod(guaranteed("2", "1Gi")), pod(guaranteed("1", "1Gi")), others)
    assert isinstance(verdict, Pending)
    assert verdict.reason == "Infeasible"


millis = st.integers(min_value=1, max_value=6000)


@given(st.lists(millis, max_size=5), millis)
def test_admitted_exactly_when_the_pod_fits_what_others_left(
    others: list[int], wanted: int
) -> None:
    allocated = [pod(requests(f"{m}m", "1Mi", name=f"c{i}")) for i, m in enumerate(others)]
    verdict = admit_resize(
        NODE, pod(requests(f"{wanted}m", "1Mi")), pod(requests("1m", "1Mi")), allocated
    )
    fits = wanted <= NODE.cpu_millis - sum(others) and len(others) + 1 <= NODE.pods
    fits = fits and (len(others) + 1) * MI <= NODE.memory_bytes
    assert isinstance(verdict, Admitted) == fits
    if not fits:
        assert isinstance(verdict, Pending)
        assert verdict.reason == "Deferred"


pending_resizes = st.lists(
    st.builds(
        PendingResize,
        uid=st.uuids().map(str),
        increasing=st.booleans(),
        priority=st.integers(-10, 10),
        guaranteed=st.booleans(),
        pending_since=st.none() | st.floats(0, 1000),
    ),
    max_size=12,
    unique_by=lambda r: r.uid,
)


@given(pending_resizes)
def test_retry_order_is_upstreams(resizes: list[PendingResize]) -> None:
    by_uid = {r.uid: r for r in resizes}
    ordered = [by_uid[uid] for uid in retry_order(resizes)]

    assert sorted(r.uid for r in ordered) == sorted(by_uid)
    for first, second in itertools.pairwise(ordered):
        if first.increasing != second.increasing:
            assert not first.increasing  # non-increasing resizes first
        elif first.priority != second.priority:
            assert first.priority > second.priority
        elif first.guaranteed != second.guaranteed:
            assert first.guaranteed
        elif second.pending_since is not None:
            assert first.pending_since is not None
            assert first.pending_since <= second.pending_since


def test_periodic_retry_comes_after_the_initial_delay_then_after_the_last_retry() -> None:
    schedule = RetrySchedule(initial_seconds=30, every_seconds=180)
    assert not schedule.is_due(1e9)  # not started
    assert schedule.start(1000.0) == 1030.0
    assert not schedule.is_due(1029.9)
    assert schedule.is_due(1030.0)
    assert schedule.retried(1030.0) == 1210.0  # the periodic retry itself
    assert schedule.retried(1100.0) == 1280.0  # a retry on a pod event postpones the next
    assert not schedule.is_due(1210.0)
    assert schedule.is_due(1280.0)


@given(st.floats(0, 1e6), st.lists(st.floats(0, 1e4), max_size=10))
def test_the_next_periodic_retry_is_always_a_period_after_the_last(
    start: float, gaps: list[float]
) -> None:
    schedule = RetrySchedule(initial_seconds=2, every_seconds=6)
    now = start
    schedule.start(now)
    for gap in gaps:
        now += gap
        assert schedule.retried(now) == now + 6
        assert not schedule.is_due(now + 5.9)


def test_increasing_requests() -> None:
    assert increases_requests(pod(requests("2", "1Gi")), pod(requests("1", "2Gi")))
    assert not increases_requests(pod(requests("1", "1Gi")), pod(requests("2", "2Gi")))


def test_memory_limit_below_usage_fails_with_the_runtimes_message() -> None:
    current, desired = pod(guaranteed("1", "200Mi")), pod(guaranteed("1", "100Mi"))
    error = memory_decrease_error(current, desired, {"c": 120 * MI})
    assert error == (
        "cannot decrease memory limits: [attempting to set pod memory limit (104857600) below "
        'current usage (125829120), attempting to set container "c" memory limit (104857600) '
        "below current usage (125829120)]"
    )
    assert memory_decrease_error(current, pod(guaranteed("1", "150Mi")), {"c": 120 * MI}) is None
    assert memory_decrease_error(current, pod(guaranteed("1", "300Mi")), {"c": 250 * MI}) is None


def test_memory_limit_check_without_a_pod_limit_names_the_container_only() -> None:
    limited = ContainerResources("c", requests={"memory": "50Mi"}, limits={"memory": "200Mi"})
    unlimited = ContainerResources("d", requests={"memory": "50Mi"})
    lowered = ContainerResources("c", requests={"memory": "50Mi"}, limits={"memory": "100Mi"})
    error = memory_decrease_error(
        pod(limited, unlimited), pod(lowered, unlimited), {"c": 120 * MI, "d": 10 * MI}
    )
    assert error == (
        'cannot decrease memory limits: attempting to set container "c" memory limit (104857600) '
        "below current usage (136314880)"
    )


def bridge_with_envelope(cpu: str, memory: str) -> PodResources:
    """A router with a small request and a sidecar without any, inside a Guaranteed envelope."""
    both = {"cpu": cpu, "memory": memory}
    return PodResources(
        (requests("100m", "64Mi", "router"), ContainerResources("telemetry")),
        Envelope(both, both),
    )


def test_an_envelope_stands_for_the_pods_requests_limits_and_qos_class() -> None:
    bridge = bridge_with_envelope("1", "1Gi")
    assert (bridge.requests("cpu"), bridge.requests("memory")) == (1000, 1024 * MI)
    assert bridge.container_requests("cpu") == 100
    assert bridge.memory_limit() == 1024 * MI
    assert bridge.qos_class() == "Guaranteed"  # though its containers alone are Burstable
    burstable = PodResources(bridge.containers, Envelope({"cpu": "1"}, {"cpu": "2"}))
    assert burstable.qos_class() == "Burstable"
    assert burstable.requests("memory") == 64 * MI  # not named by the envelope: the containers'


def test_an_envelope_resize_is_deferred_by_the_envelope_not_the_containers() -> None:
    others = [pod(guaranteed("3", "1Gi"))]
    grown = bridge_with_envelope("1500m", "1Gi")
    verdict = admit_resize(NODE, grown, bridge_with_envelope("1", "1Gi"), others)
    assert verdict == Pending(
        "Deferred",
        "Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000",
    )
    assert increases_requests(grown, bridge_with_envelope("1", "1Gi"))
    assert not grown.same_as(bridge_with_envelope("1", "1Gi"))


def test_lowering_the_envelope_below_the_pods_usage_fails() -> None:
    error = memory_decrease_error(
        bridge_with_envelope("1", "1Gi"),
        bridge_with_envelope("1", "512Mi"),
        {"router": 400 * MI, "telemetry": 200 * MI},
    )
    assert error == (
        "cannot decrease memory limits: attempting to set pod memory limit "
        f"({512 * MI}) below current usage ({600 * MI})"
    )
