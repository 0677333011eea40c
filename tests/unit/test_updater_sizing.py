"""Sizing and resize patches: a target is applied to the limit (the request where there is no
limit), the QoS class stays, nothing is removed, policy bounds hold, and a memory limit never
goes below usage plus headroom."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import GiB, MiB, parse
from bridgescale.updater.pods import SIZED, Container, Pod, QoSClass, Sized, qos_class
from bridgescale.updater.recommendations import ContainerRecommendation
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.sizing import Usage, memory_floor, plan_resize, size

SETTINGS = UpdaterSettings()
CPU = st.integers(min_value=1, max_value=64_000).map(lambda m: m / 1000)
MEMORY = st.integers(min_value=16, max_value=64 * 1024).map(lambda m: float(m * MiB))


def _amount(resource: Sized) -> st.SearchStrategy[float]:
    return CPU if resource == "cpu" else MEMORY


@st.composite
def containers(draw: st.DrawFn, qos: QoSClass, index: int) -> Container:
    requests: dict[Sized, float] = {}
    limits: dict[Sized, float] = {}
    for resource in SIZED:
        if qos is QoSClass.GUARANTEED:
            requests[resource] = limits[resource] = draw(_amount(resource))
        elif qos is QoSClass.BURSTABLE:
            if draw(st.booleans()):
                requests[resource] = draw(_amount(resource))
            if draw(st.booleans()):
                limits[resource] = requests.get(resource, 0.0) + draw(_amount(resource))
                requests.setdefault(resource, limits[resource])  # the API server's default
    return Container(f"c{index}", requests, limits)


@st.composite
def pods(draw: st.DrawFn) -> Pod:
    qos = draw(st.sampled_from(list(QoSClass)))
    count = draw(st.integers(min_value=1, max_value=3))
    built = tuple(draw(containers(qos, i)) for i in range(count))
    return Pod("ns", "p", "uid", "1", 1, 1, qos_class(built), built, phase="Running", node_name="n")


RECOMMENDATIONS = st.fixed_dictionaries({"cpu": CPU, "memory": MEMORY}).map(
    lambda target: ContainerRecommendation("", target)
)
USAGE = st.builds(
    Usage,
    working_set=st.none() | MEMORY,
    peak=st.none() | MEMORY,
    throttled_ratio=st.floats(0, 1),
    oom_killed_recently=st.booleans(),
    burst_forecast=st.booleans(),
)
POLICIES = st.builds(
    WorkloadPolicy,
    min_allowed=st.fixed_dictionaries({}, optional={"cpu": CPU, "memory": MEMORY}),
    max_allowed=st.fixed_dictionaries(
        {},
        optional={"cpu": CPU.map(lambda v: v + 64), "memory": MEMORY.map(lambda v: v + 64 * GiB)},
    ),
)


@given(pods(), st.lists(RECOMMENDATIONS, min_size=3, max_size=3), POLICIES, USAGE)
def test_resize_keeps_qos_removes_nothing_and_respects_bounds(
    pod: Pod, recs: list[ContainerRecommendation], policy: WorkloadPolicy, usage: Usage
) -> None:
    by_name = {f"c{i}": ContainerRecommendation(f"c{i}", r.target) for i, r in enumerate(recs)}
    resize = plan_resize(pod, by_name, policy, {c.name: usage for c in pod.containers}, SETTINGS)
    if pod.qos_class is QoSClass.BEST_EFFORT:
        assert resize is None
        return
    if resize is None:
        return
    after = {c.name: c for c in pod.containers}
    for change in resize.changes:
        before = change.before
        assert set(before.requests) <= set(change.requests)
        assert set(before.limits) <= set(change.limits)
        resized = Container(change.container, change.requests, change.limits)
        for resource in SIZED:
            _assert_request_kept_below_its_limit(before, resized, resource)
            old, new = size(before, resource), size(resized, resource)
            if new is not None and new != old:
                low = policy.min_allowed.get(resource, 0.0)
                high = policy.max_allowed.get(resource, float("inf"))
                floor = memory_floor(usage, SETTINGS) if resource == "memory" else 0.0
                assert low <= new <= max(high, min(floor, old or 0.0))
        after[change.container] = resized
    assert qos_class(tuple(after.values())) is pod.qos_class


def _assert_request_kept_below_its_limit(before: Container, after: Container, r: Sized) -> None:
    """A request never above its limit, strictly below it if it was, at its old ratio."""
    limit, request = after.limits.get(r), after.requests.get(r)
    if limit is None or request is None:
        return
    assert request <= limit
    old_limit, old_request = before.limits[r], before.requests[r]
    if old_request < old_limit:
        assert request < limit
        unit = 0.001 if r == "cpu" else MiB
        assert abs(request - limit * old_request / old_limit) <= unit * 1.0001


@given(pods(), RECOMMENDATIONS, USAGE)
def test_memory_limit_never_lowered_below_usage_plus_headroom(
    pod: Pod, rec: ContainerRecommendation, usage: Usage
) -> None:
    recs = {c.name: ContainerRecommendation(c.name, rec.target) for c in pod.containers}
    usages = {c.name: usage for c in pod.containers}
    resize = plan_resize(pod, recs, WorkloadPolicy(), usages, SETTINGS)
    floor = memory_floor(usage, SETTINGS)
    for change in resize.changes if resize else ():
        old = change.before.limits.get("memory")
        new = change.limits.get("memory")
        if old is not None and new is not None and new < old:
            assert new >= floor
            assert new >= old * (1 - SETTINGS.memory_max_step_down) - MiB


def _guaranteed(cpu: str, memory: str) -> Pod:
    amounts: dict[Sized, float] = {"cpu": parse(cpu, "cpu"), "memory": parse(memory, "memory")}
    container = Container("router", amounts, amounts)
    return Pod("ns", "bridge-0", "u", "7", 1, 1, QoSClass.GUARANTEED, (container,), phase="Running")


def test_scale_up_moves_requests_and_limits_together_in_one_patch() -> None:
    pod = _guaranteed("1", "1Gi")
    rec = ContainerRecommendation("router", {"cpu": 2.0, "memory": 2.0 * GiB})
    resize = plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS)
    assert resize is not None and resize.scales_up
    assert resize.patch() == {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "containers": [
                {
                    "name": "router",
                    "resources": {
                        "requests": {"cpu": "2", "memory": "2Gi"},
                        "limits": {"cpu": "2", "memory": "2Gi"},
                    },
                }
            ]
        },
    }
    assert resize.describe() == "router cpu 1 -> 2, memory 1Gi -> 2Gi"


def test_within_tolerance_and_bounds_nothing_changes() -> None:
    pod = _guaranteed("1", "1Gi")
    rec = ContainerRecommendation(
        "router",
        {"cpu": 1.05, "memory": 1.05 * GiB},
        lower_bound={"cpu": 0.5, "memory": 0.5 * GiB},
        upper_bound={"cpu": 2.0, "memory": 2.0 * GiB},
    )
    assert plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS) is None


def test_memory_downscale_is_bounded_by_step_and_usage() -> None:
    pod = _guaranteed("1", "4Gi")
    rec = ContainerRecommendation("router", {"cpu": 1.0, "memory": 1.0 * GiB})
    step = plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS)
    assert step is not None and step.changes[0].limits["memory"] == 3 * GiB  # 25 % a step
    busy = {"router": Usage(working_set=3.5 * GiB, peak=3.6 * GiB)}
    assert plan_resize(pod, {"router": rec}, WorkloadPolicy(), busy, SETTINGS) is None
    burst = {"router": Usage(burst_forecast=True)}
    assert plan_resize(pod, {"router": rec}, WorkloadPolicy(), burst, SETTINGS) is None


def test_a_container_at_risk_grows_even_when_the_target_is_met() -> None:
    pod = _guaranteed("1", "1Gi")
    rec = ContainerRecommendation("router", {"cpu": 1.0, "memory": 1.0 * GiB})
    usage = {"router": Usage(oom_killed_recently=True, throttled_ratio=0.5)}
    resize = plan_resize(pod, {"router": rec}, WorkloadPolicy(), usage, SETTINGS)
    assert resize is not None
    assert resize.changes[0].requests == {"cpu": 1.25, "memory": 1.25 * GiB}
    assert "OOM-killed recently" in resize.changes[0].reasons[1]


def _burstable(requests: dict[Sized, str], limits: dict[Sized, str]) -> Pod:
    container = Container(
        "router",
        {r: parse(v, r) for r, v in requests.items()},
        {r: parse(v, r) for r, v in limits.items()},
    )
    return Pod("ns", "bridge-0", "u", "7", 1, 1, QoSClass.BURSTABLE, (container,), phase="Running")


def test_burstable_limit_becomes_the_target_and_the_request_keeps_its_ratio() -> None:
    pod = _burstable({"cpu": "1", "memory": "3Gi"}, {"cpu": "2", "memory": "6Gi"})
    rec = ContainerRecommendation("router", {"cpu": 3.0, "memory": 7373.0 * MiB})
    resize = plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS)
    assert resize is not None
    resources = resize.patch()["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "1500m", "memory": "3687Mi"},
        "limits": {"cpu": "3", "memory": "7373Mi"},
    }
    assert resize.describe() == "router cpu limit 2 -> 3, memory limit 6Gi -> 7373Mi"


def test_burstable_without_a_limit_gets_the_target_as_request() -> None:
    pod = _burstable({"cpu": "1", "memory": "1Gi"}, {"memory": "2Gi"})
    rec = ContainerRecommendation("router", {"cpu": 2.0, "memory": 2.0 * GiB})
    resize = plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS)
    assert resize is not None
    assert resize.changes[0].requests == {"cpu": 2.0, "memory": 1.0 * GiB}
    assert resize.changes[0].limits == {"memory": 2.0 * GiB}


def test_burstable_memory_limit_steps_down_safely_and_the_request_follows() -> None:
    pod = _burstable({"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "4Gi"})
    rec = ContainerRecommendation("router", {"cpu": 2.0, "memory": 1.0 * GiB})
    step = plan_resize(pod, {"router": rec}, WorkloadPolicy(), {}, SETTINGS)
    assert step is not None
    assert step.changes[0].limits["memory"] == 3 * GiB  # 25 % a step, of the limit
    assert step.changes[0].requests["memory"] == 1.5 * GiB
    busy = {"router": Usage(working_set=3.5 * GiB, peak=3.6 * GiB)}
    assert plan_resize(pod, {"router": rec}, WorkloadPolicy(), busy, SETTINGS) is None


def test_burstable_at_risk_raises_the_limit_and_the_request_with_it() -> None:
    pod = _burstable({"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
    rec = ContainerRecommendation("router", {"cpu": 2.0, "memory": 2.0 * GiB})
    usage = {"router": Usage(working_set=1.9 * GiB)}
    resize = plan_resize(pod, {"router": rec}, WorkloadPolicy(), usage, SETTINGS)
    assert resize is not None
    assert resize.changes[0].limits["memory"] == 2.5 * GiB
    assert resize.changes[0].requests["memory"] == 1.25 * GiB
    assert resize.changes[0].reasons == ("memory: working set near the memory limit",)


def test_policy_bounds_the_limit_of_a_burstable_container() -> None:
    pod = _burstable({"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
    rec = ContainerRecommendation("router", {"cpu": 2.0, "memory": 8.0 * GiB})
    policy = WorkloadPolicy(max_allowed={"memory": 4.0 * GiB})
    resize = plan_resize(pod, {"router": rec}, policy, {}, SETTINGS)
    assert resize is not None
    assert resize.changes[0].limits["memory"] == 4 * GiB
    assert resize.changes[0].requests["memory"] == 2 * GiB


@given(pods(), st.lists(RECOMMENDATIONS, min_size=3, max_size=3), POLICIES, USAGE)
def test_the_patch_says_exactly_the_planned_resize(
    pod: Pod, recs: list[ContainerRecommendation], policy: WorkloadPolicy, usage: Usage
) -> None:
    by_name = {f"c{i}": ContainerRecommendation(f"c{i}", r.target) for i, r in enumerate(recs)}
    resize = plan_resize(pod, by_name, policy, {c.name: usage for c in pod.containers}, SETTINGS)
    if resize is None:
        return

    patch = resize.patch()

    assert set(patch) == {"metadata", "spec"}
    assert patch["metadata"] == {"resourceVersion": pod.resource_version}  # the precondition
    assert set(patch["spec"]) == {"containers"}
    names = [c["name"] for c in patch["spec"]["containers"]]
    assert len(names) == len(set(names))
    assert set(names) <= {c.name for c in pod.containers}
    for entry, change in zip(patch["spec"]["containers"], resize.changes, strict=True):
        assert set(entry) == {"name", "resources"}
        for key, planned in (("requests", change.requests), ("limits", change.limits)):
            written = entry["resources"].get(key, {})
            assert set(written) == set(planned) <= set(SIZED)  # cpu and memory only, none removed
            for resource, text in written.items():
                assert parse(text, resource) >= planned[resource]  # never written smaller
                assert parse(text, resource) - planned[resource] <= (
                    0.001 if resource == "cpu" else 1
                )
