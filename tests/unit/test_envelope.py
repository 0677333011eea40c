"""The envelope comparison: series `pod/container` grouped into pods, their usage summed at
each timestamp, and a pod whose containers peak at different times needing a smaller envelope
than the sum of its containers' limits, scored by hand."""

from __future__ import annotations

import numpy as np

from bridgescale.models.backtest import Limits, UsageTrace
from bridgescale.models.base import DAY, HOUR
from bridgescale.models.envelope import compare, pod_name, pod_trace

START = 1_699_920_000.0  # a UTC midnight
DAYS = 4


def _anti_correlated() -> UsageTrace:
    """bridge-0: a router busy by day and a sidecar busy by night; solo: one container."""
    time = START + 300.0 * np.arange(DAYS * 288)
    day = ((time % DAY) / HOUR >= 6) & ((time % DAY) / HOUR < 18)
    router, sidecar = np.where(day, 3.0, 1.0), np.where(day, 1.0, 3.0)
    usage = np.concatenate([router, sidecar, np.full(time.size, 2.0)])
    return UsageTrace(
        ["bridge-0/router", "bridge-0/telemetry", "solo"],
        np.repeat(np.arange(3, dtype=np.int64), time.size),
        np.tile(time, 3),
        {"cpu": usage, "memory": usage * 1e9},
    )


def _flat(count: int, first_hour: int, hours: int, level: dict[str, float]) -> Limits:
    return Limits(first_hour, {r: np.full((count, hours), v) for r, v in level.items()})


def test_series_are_grouped_by_the_name_before_the_last_slash() -> None:
    assert pod_name("bridge-0/router") == "bridge-0"
    assert pod_name("ns/bridge-0/router") == "ns/bridge-0"
    assert pod_name("solo") == "solo"
    pods = pod_trace(_anti_correlated())
    assert pods.pods.series == ["bridge-0", "solo"]
    assert list(pods.containers) == [2, 1]
    assert set(pods.pods.usage["cpu"][pods.pods.container == 0]) == {4.0}


def test_the_envelope_of_the_sum_is_smaller_than_the_sum_of_the_limits() -> None:
    trace = _anti_correlated()
    pods = pod_trace(trace)
    first_hour = int(START // HOUR)
    hours = DAYS * 24 + 1
    per_container = _flat(3, first_hour, hours, {"cpu": 3.0, "memory": 3e9})
    envelope = _flat(2, first_hour, hours, {"cpu": 4.0, "memory": 3.9e9})

    scores = compare(trace, per_container, pods, envelope)

    cpu, memory = scores["cpu"], scores["memory"]
    assert cpu["pods"] == 1  # solo is left out
    assert cpu["per_container_footprint"] == 6.0 / 4.0
    assert cpu["envelope_footprint"] == 1.0
    assert cpu["saving"] == 1 - 1.0 / 1.5
    assert cpu["per_container_overrun_days"] == cpu["envelope_overrun_days"] == 0.0
    assert memory["envelope_overrun_days"] == 1.0  # 3.9 GB under the sum of 4 GB, every day
