"""The bridge workload model: deterministic per timestamp, whatever the window asked for."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgescale.simulator import workload


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    start=st.integers(1_600_000_000, 1_900_000_000),
    pick=st.integers(0, 287),
)
def test_a_timestamp_has_one_value_whatever_the_window(seed: int, start: int, pick: int) -> None:
    window = start + 300.0 * np.arange(288)
    whole = workload.usage(workload.ROUTER, seed, window)
    alone = workload.usage(workload.ROUTER, seed, window[pick : pick + 1])
    for resource, values in whole.items():
        assert values[pick] == alone[resource][0]
        assert np.all(np.isfinite(values)) and np.all(values >= 0)


def test_bridges_have_a_router_and_a_telemetry_sidecar() -> None:
    names = [name for name, _, _ in workload.fleet(4, seed=1)]
    assert names == [
        "bridge-0000/router",
        "bridge-0000/telemetry",
        "bridge-0001/router",
        "bridge-0001/telemetry",
    ]


def test_router_memory_leaks_until_restart_and_gpu_spikes() -> None:
    days = 1_767_571_200 + 300.0 * np.arange(288 * 10)
    router = workload.usage(workload.ROUTER, 5, days)
    assert router["vram"].max() > workload.ROUTER.vram_bytes * 1.2
    assert router["vram"].min() == pytest.approx(workload.ROUTER.vram_bytes)
    assert np.any(np.diff(router["memory"]) < -0.5 * workload.GIB)  # a restart drops the leak


def test_profile_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="burst_probability"):
        workload.ContainerProfile(burst_probability=2.0)
