"""The backtest: strict causality, metrics on a series small enough to score by hand, and the
usage CSV round trip."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgescale.models import registry
from bridgescale.models.backtest import UsageTrace, limit_changes, metrics, replay
from bridgescale.models.backtest import oracle as oracle_limits
from bridgescale.models.base import DAY, HOUR
from bridgescale.traces import TraceError, read_usage_csv, write_usage_csv

START = 1_699_920_000.0  # a UTC midnight
RECOMMENDERS = [n for n in registry.names() if n != registry.ORACLE]


def _trace(days: int, seed: int, series: int = 2, offset: float = 17) -> UsageTrace:
    rng = np.random.default_rng(seed)
    per_series = days * 288
    time = np.tile(START + 300.0 * np.arange(per_series) + offset, series)
    hour_of_day = (time % DAY) / HOUR
    cpu = 0.5 + 0.3 * np.sin(hour_of_day / 24 * 2 * np.pi) + rng.gamma(2, 0.05, time.size)
    memory = 1e9 + 1e8 * rng.random(time.size)
    container = np.repeat(np.arange(series, dtype=np.int64), per_series)
    return UsageTrace(
        [f"s{i}" for i in range(series)], container, time, {"cpu": cpu, "memory": memory}
    )


@settings(max_examples=6, deadline=None)
@given(
    name=st.sampled_from(RECOMMENDERS),
    cut_hour=st.integers(min_value=30, max_value=90),
    seed=st.integers(0, 1000),
)
def test_limits_up_to_a_cut_ignore_everything_after_it(name: str, cut_hour: int, seed: int) -> None:
    trace = _trace(days=4, seed=seed, offset=0)
    cut = START + cut_hour * HOUR
    changed = {r: v.copy() for r, v in trace.usage.items()}
    after = trace.timestamp >= cut
    rng = np.random.default_rng(seed + 1)
    for values in changed.values():
        values[after] = values[after] * rng.uniform(0, 20, int(after.sum()))
    # A spike exactly on the hour of the cut: the limits set at the cut must not see it.
    on_the_hour = trace.timestamp == cut
    assert on_the_hour.any()
    changed["cpu"][on_the_hour] = 1e3
    changed["memory"][on_the_hour] = 1e13
    original = replay(trace, registry.create(name))
    modified = replay(
        UsageTrace(trace.series, trace.container, trace.timestamp, changed), registry.create(name)
    )
    upto = int(cut // HOUR) - original.first_hour + 1
    for resource in trace.resources:
        np.testing.assert_array_equal(
            original.values[resource][:, :upto], modified.values[resource][:, :upto]
        )


def test_metrics_of_a_hand_scored_series() -> None:
    # One series, 3 days of 5-minute samples at 1 core: the oracle's limit is 1 core.
    time = START + 300.0 * np.arange(3 * 288)
    cpu = np.ones(time.size)
    cpu[-1] = 2.0  # the last sample of day 3 is the day's peak
    trace = UsageTrace(["a"], np.zeros(time.size, np.int64), time, {"cpu": cpu})
    scores = metrics(trace, oracle_limits(trace))["cpu"]
    # Day 3 alone is scored: limit 2 on all 288 samples, usage 287 + 2.
    assert scores["footprint"] == pytest.approx(2 * 288 / 289)
    assert scores["overrun_sample_fraction"] == 0
    assert scores["relative_slack_mean"] == pytest.approx(0.5)
    assert scores["changes_per_day_mean"] == 1  # from 1 core to 2 at midnight


def test_limit_changes_start_with_the_initial_limit() -> None:
    trace = _trace(days=1, seed=3, series=1)
    rows = limit_changes(trace, oracle_limits(trace))
    assert [(r.resource, r.timestamp) for r in rows] == [
        ("cpu", int(START)),
        ("memory", int(START)),
    ]


def test_usage_csv_round_trip(tmp_path: Path) -> None:
    trace = _trace(days=1, seed=4)
    path = tmp_path / "trace.csv.gz"
    write_usage_csv(path, trace)
    again = read_usage_csv(path)
    assert again.series == trace.series
    np.testing.assert_array_equal(again.timestamp, np.floor(trace.timestamp))
    np.testing.assert_allclose(again.usage["cpu"], trace.usage["cpu"], atol=1e-6)
    np.testing.assert_allclose(again.usage["memory"], trace.usage["memory"], atol=0.5)


def test_unsorted_csv_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("series,timestamp,cpu,memory\na,200,1,1\na,100,1,1\n")
    with pytest.raises(TraceError, match="row 3"):
        read_usage_csv(path)
