"""Prometheus answers as they come: NaN and infinities, empty results, points out of order,
duplicated stamps, malformed entries, and negative rates where a store mishandled a reset."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bridgescale.history import (
    clean_points,
    escape_label_value,
    parse_matrix,
    parse_vector,
    pod_level_queries,
    usage_queries,
)
from bridgescale.quantity import POD

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "+Inf", "-Inf", "garbage", ""]),
)
POINTS = st.lists(st.tuples(st.integers(0, 10**6).map(float), VALUES.map(str)), max_size=50)


@given(POINTS)
def test_clean_points_are_finite_and_strictly_increasing(points: list[tuple[float, str]]) -> None:
    times, values = clean_points(points)
    assert list(times) == sorted(set(times))
    assert all(math.isfinite(v) for v in values)
    finite = {t for t, v in points if math.isfinite(float(v) if _is_number(v) else math.nan)}
    assert set(times) == finite


@given(POINTS)
def test_cpu_rates_are_never_negative(points: list[tuple[float, str]]) -> None:
    result = [{"metric": {"pod": "p", "container": "c"}, "values": [list(p) for p in points]}]
    for series in parse_matrix(result, "cpu"):
        assert all(v >= 0 for v in series.values)
        assert series.times


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
    assert (series.pod, series.container, series.values) == ("bridge-0", POD, (2.0, 3.0))
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
