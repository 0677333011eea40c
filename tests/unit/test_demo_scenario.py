"""The demo's scenario: which phase runs when, and the simulator annotations a pod gets."""

import itertools

import numpy as np
import pytest

from bridgescale.localcluster.scenario import PHASES, Phase, Schedule, changes
from bridgescale.simulator import usage, workload

LOAD = usage.LOAD_SCALE_ANNOTATION
GPU_LOAD = usage.GPU_LOAD_SCALE_ANNOTATION


def test_phases_follow_each_other_over_the_length_and_end() -> None:
    schedule = Schedule(360.0)
    bounds = schedule.bounds()
    assert [phase.name for _, _, phase in bounds] == [p.name for p in PHASES]
    assert bounds[0][0] == 0.0
    assert bounds[-1][1] == pytest.approx(360.0)
    for (_, end, _), (start, _, _) in itertools.pairwise(bounds):
        assert end == start
    assert schedule.phase_at(0.0) == PHASES[0]
    assert schedule.phase_at(bounds[1][0] + 0.001) == PHASES[1]
    assert schedule.phase_at(359.9) == PHASES[-1]
    assert schedule.phase_at(360.0) is None
    assert schedule.phase_at(-1.0) is None


def test_shares_are_scaled_to_the_length() -> None:
    schedule = Schedule(100.0, (Phase("a", 1.0), Phase("b", 3.0)))
    assert [(start, end) for start, end, _ in schedule.bounds()] == [(0.0, 25.0), (25.0, 100.0)]


@pytest.mark.parametrize("seconds", [0.0, -5.0])
def test_a_schedule_needs_a_length(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        Schedule(seconds)


def test_the_burst_loads_the_sensor_bridges_and_the_gpu_phase_the_point_clouds() -> None:
    burst, gpu = PHASES[1], PHASES[2]
    assert burst.annotations("lidar-bridge") == {LOAD: "3", GPU_LOAD: None}
    assert burst.annotations("pointcloud") == {LOAD: None, GPU_LOAD: None}
    assert gpu.annotations("pointcloud") == {LOAD: None, GPU_LOAD: "3.5"}


def test_only_differing_annotations_are_patched_and_normal_load_removes_them() -> None:
    steady = PHASES[0].annotations("lidar-bridge")
    assert changes({LOAD: "3", "other": "x"}, steady) == {LOAD: None}
    assert changes({}, steady) == {}
    assert changes({LOAD: "3"}, PHASES[1].annotations("lidar-bridge")) == {}


def test_the_gpu_phase_passes_the_smallest_mig_profile() -> None:
    """3.5 times the router's resident model alone is past 10 GiB: the claim must grow."""
    annotations = {usage.PROFILE: usage.BRIDGE, GPU_LOAD: "3.5"}
    times = 1_767_571_200 + 300.0 * np.arange(288)
    vram = usage.bridge_usage(annotations, "bridges/pointcloud-x", "router", times)["vram"]
    assert vram.min() > 10 * workload.GIB


def test_load_scales_cpu_and_bad_values_are_ignored() -> None:
    base = {usage.PROFILE: usage.BRIDGE}
    now = 1_767_571_200.0
    normal = usage.container_usage(base, "bridges/b-0", "router", 60.0, now)
    loaded = usage.container_usage({**base, LOAD: "3"}, "bridges/b-0", "router", 60.0, now)
    assert loaded.cpu_cores == pytest.approx(3 * normal.cpu_cores)
    assert loaded.memory_bytes > normal.memory_bytes
    assert loaded.gpu_memory_bytes == normal.gpu_memory_bytes
    for bad in ("0", "-2", "lots", "1e9"):
        ignored = usage.container_usage({**base, LOAD: bad}, "bridges/b-0", "router", 60.0, now)
        assert ignored == normal
