"""Prometheus answers as they come: NaN and infinities, empty results, points out of order,
duplicated stamps, malformed entries, values no real size reaches, and negative rates where a
store mishandled a counter reset. What is left out is said in one log line."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgescale.history import (
    UsageResource,
    clean_points,
    escape_label_value,
    parse_matrix,
    parse_vector,
    pod_level_queries,
    usage_queries,
)
from bridgescale.quantity import MAX_BYTES, MAX_CORES, POD

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "+Inf", "-Inf", "garbage", ""]),
)
POINTS = st.lists(st.tuples(st.integers(0, 10**6).map(float), VALUES.map(str)), max_size=50)


@given(POINTS)
def test_clean_points_are_usable_and_strictly_increasing(points: list[tuple[float, str]]) -> None:
    times, values = clean_points(points)
    assert list(times) == sorted(set(times))
    assert all(math.isfinite(v) and 0 <= v <= MAX_BYTES for v in values)
    usable = {t for t, v in points if 0 <= (float(v) if _is_number(v) else math.nan) <= MAX_BYTES}
    assert set(times) == usable


@given(POINTS)
def test_cpu_rates_are_never_negative(points: list[tuple[float, str]]) -> None:
    result = [{"metric": {"pod": "p", "container": "c"}, "values": [list(p) for p in points]}]
    for series in parse_matrix(result, "cpu"):
        assert all(v >= 0 for v in series.values)
        assert len(series.times)


def test_malformed_and_empty_answers_give_no_series() -> None:
    assert parse_matrix([], "memory") == []
    assert parse_matrix(None, "memory") == []
    assert parse_matrix([{"metric": {"pod": "p"}, "values": [[1, "2"]]}], "memory") == []
    assert parse_matrix([{"metric": {"pod": "p", "container": "c"}, "values": []}], "cpu") == []


def test_label_values_are_escaped_in_queries() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    query = usage_queries('team"x', 300)["memory"]
    assert 'namespace="team\\"x"' in query


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_instant_answers_keep_only_finite_non_negative_values_of_known_containers() -> None:
    result = [
        {"metric": {"pod": "p", "container": "router"}, "value": [1.0, "314572800"]},
        {"metric": {"pod": "p", "container": "nan"}, "value": [1.0, "NaN"]},
        {"metric": {"pod": "p", "container": "inf"}, "value": [1.0, "+Inf"]},
        {"metric": {"pod": "p", "container": "negative"}, "value": [1.0, "-5"]},
        {"metric": {"pod": "p"}, "value": [1.0, "1"]},
        {"metric": {"pod": "p", "container": "short"}, "value": ["1"]},
        "garbage",
    ]
    assert parse_vector(result) == {("p", "router"): 314572800.0}
    assert parse_vector({"unexpected": "shape"}) == {}


def test_pod_level_series_are_named_pod_and_sum_before_the_peak() -> None:
    answer = [{"metric": {"namespace": "ns", "pod": "bridge-0"}, "values": [[60, "2"], [120, "3"]]}]
    (series,) = parse_matrix(answer, "memory", pod_level=True)
    assert (series.pod, series.container, tuple(series.values)) == ("bridge-0", POD, (2.0, 3.0))
    assert parse_matrix(answer, "memory") == []  # a container query's answer needs its label
    memory = pod_level_queries("ns", 60)["memory"]
    assert memory.startswith("max by (namespace, pod) (max_over_time((sum by (namespace, pod)")
    assert memory.endswith("[60s:]))")


def test_instant_answers_give_values_by_pod_and_container() -> None:
    result = [
        {"metric": {"pod": "p-0", "container": "router"}, "value": [1.0, "2.5"]},
        {"metric": {"pod": "p-0", "container": "telemetry"}, "value": [1.0, "NaN"]},
        {"metric": {"pod": "p-1"}, "value": [1.0, "1"]},
        {"metric": {"pod": "p-2", "container": "router"}},
        "garbage",
    ]
    assert parse_vector(result) == {("p-0", "router"): 2.5}
    assert parse_vector(None) == {}


HUGE = st.floats(min_value=MAX_BYTES * 1.001, max_value=1e308).map(repr)
SANE = st.floats(min_value=0, max_value=1e12).map(repr)


@given(
    st.lists(st.tuples(st.integers(0, 10**6).map(float), st.one_of(HUGE, SANE)), max_size=40),
    st.sampled_from(["cpu", "memory", "gpu-memory"]),
)
def test_huge_values_never_reach_a_series(
    points: list[tuple[float, str]], resource: UsageResource
) -> None:
    result = [{"metric": {"pod": "p", "container": "c"}, "values": [list(p) for p in points]}]
    ceiling = MAX_CORES if resource == "cpu" else MAX_BYTES
    for series in parse_matrix(result, resource):
        assert all(v <= ceiling for v in series.values)


@given(st.permutations(list(range(30))))
def test_points_out_of_order_come_back_in_time_order(order: list[int]) -> None:
    values = [[1000.0 + 60 * i, str(float(i))] for i in order]
    (series,) = parse_matrix([{"metric": {"pod": "p", "container": "c"}, "values": values}], "cpu")
    assert tuple(series.times) == tuple(1000.0 + 60 * i for i in range(30))
    assert tuple(series.values) == tuple(float(i) for i in range(30))


def test_a_counter_reset_read_as_a_negative_rate_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # rate() handles a reset itself; a store that mishandles one answers a negative rate.
    values = [[0, "0.5"], [60, "-12.25"], [120, "0.5"], [180, "NaN"], [240, "+Inf"], [300, "1e300"]]
    result = [{"metric": {"pod": "p", "container": "c"}, "values": values}, {"metric": {}}]

    (series,) = parse_matrix(result, "cpu")

    assert tuple(series.times) == (0.0, 120.0)
    assert caplog.messages == [
        "Prometheus cpu answer: left out 2 NaN or infinite, 1 beyond any real size, "
        "1 malformed series, 1 negative"
    ]


def test_a_clean_answer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    values = [[0, "1"], [60, "2"]]
    assert parse_matrix([{"metric": {"pod": "p", "container": "c"}, "values": values}], "memory")
    assert caplog.messages == []
