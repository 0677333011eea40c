"""The demo's summary and chart from snapshots made up here: resizes, recreations, restarts,
OOM kills and slack are counted from what the pods showed."""

from pathlib import Path

import pytest

from bridgescale.localcluster.demo_report import (
    ContainerView,
    Snapshot,
    chart,
    phase_spans,
    slack,
    summarize,
    trace,
)
from bridgescale.quantity import GiB

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def view(pod: str, uid: str, cpu_limit: float, *, used: float = 1.0, restarts: int = 0,
         last: str | None = None, container: str = "router") -> ContainerView:  # fmt: skip
    return ContainerView(
        pod=pod,
        uid=uid,
        workload=pod.rsplit("-", 1)[0],
        container=container,
        used={"cpu": used, "memory": 1 * GiB},
        target={"cpu": 2.0, "memory": 2 * GiB},
        requests={"cpu": cpu_limit / 2, "memory": 2 * GiB},
        limits={"cpu": cpu_limit, "memory": 4 * GiB},
        restarts=restarts,
        last_termination=last,
    )


def at(seconds: float, *views: ContainerView, phase: str = "steady") -> Snapshot:
    return Snapshot(seconds, phase, views)


def test_an_in_place_resize_is_a_change_of_applied_resources_of_the_same_pod() -> None:
    snapshots = [
        at(0, view("lidar-0", "u1", 4.0), view("cam-0", "u2", 2.0)),
        at(3, view("lidar-0", "u1", 4.0), view("cam-0", "u2", 2.0)),
        at(6, view("lidar-0", "u1", 2.0), view("cam-0", "u2", 2.0)),
        at(9, view("lidar-0", "u1", 2.5), view("cam-0", "u2", 2.0)),
    ]
    summary = summarize(snapshots)
    assert summary.resizes == 2
    assert summary.resized_pods == ("lidar-0",)
    assert summary.recreations == 0
    assert summary.restarts == summary.restarts_of_resized == summary.oom_kills == 0


def test_a_resize_of_two_containers_at_once_is_one_resize() -> None:
    first = at(0, view("p-0", "u1", 2.0), view("p-0", "u1", 1.0, container="telemetry"))
    second = at(3, view("p-0", "u1", 3.0), view("p-0", "u1", 0.5, container="telemetry"))
    assert summarize([first, second]).resizes == 1


def test_a_replaced_pod_is_a_recreation_not_a_resize() -> None:
    snapshots = [
        at(0, view("gpu-abc", "u1", 2.0)),
        at(3, view("gpu-def", "u9", 3.0)),
        at(6, view("gpu-def", "u9", 3.0)),
    ]
    summary = summarize(snapshots)
    assert summary.recreations == 1
    assert summary.resizes == 0


def test_restarts_and_oom_kills_are_counted_from_restart_counts() -> None:
    snapshots = [
        at(0, view("a-0", "u1", 2.0, restarts=4), view("b-0", "u2", 2.0)),
        at(3, view("a-0", "u1", 2.0, restarts=5, last="OOMKilled"), view("b-0", "u2", 3.0)),
        at(6, view("a-0", "u1", 2.0, restarts=6, last="Error"), view("b-0", "u2", 3.0)),
    ]
    summary = summarize(snapshots)
    assert summary.restarts == 2  # counted from the first snapshot, not since the pod began
    assert summary.oom_kills == 1
    assert summary.resized_pods == ("b-0",)
    assert summary.restarts_of_resized == 0


def test_slack_is_requests_minus_usage_over_all_containers() -> None:
    snapshot = at(0, view("a-0", "u1", 4.0, used=0.5), view("b-0", "u2", 2.0, used=1.5))
    assert slack(snapshot).cpu_cores == pytest.approx((2.0 - 0.5) + (1.0 - 1.5))
    assert slack(snapshot).memory_bytes == pytest.approx(2 * GiB)


def test_slack_before_comes_from_the_fleet_before_bridgescale_acted() -> None:
    before = at(0, view("a-0", "u1", 8.0, used=1.0), phase="before")
    after = at(3, view("a-0", "u1", 4.0, used=1.0))
    summary = summarize([after], before)
    assert summary.slack_before.cpu_cores == pytest.approx(3.0)
    assert summary.slack_after.cpu_cores == pytest.approx(1.0)


def test_nothing_to_summarize_is_an_error() -> None:
    with pytest.raises(ValueError, match="no snapshots"):
        summarize([])


def test_phases_and_traces_follow_the_snapshots() -> None:
    snapshots = [
        at(0, view("a-0", "u1", 2.0)),
        at(3, view("a-0", "u1", 2.0)),
        at(6, view("a-0", "u1", 3.0), phase="burst"),
        at(9, phase="burst"),
    ]
    assert phase_spans(snapshots) == [(0, 3, "steady"), (6, 9, "burst")]
    cpu = trace(snapshots, "a-0", "router", "cpu")
    assert cpu.seconds == [0, 3, 6]
    assert cpu.limit == [2.0, 2.0, 3.0]
    assert cpu.target == [2.0, 2.0, 2.0]


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    snapshots = [at(s, view("a-0", "u1", 2.0 + s / 10, used=s / 5)) for s in range(0, 30, 3)]
    path = chart(snapshots, "a-0", "router", tmp_path / "demo" / "a-0.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
