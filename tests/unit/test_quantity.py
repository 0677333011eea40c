"""Quantities: parsed with the Kubernetes client's parser, formatted canonically, never garbage."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgescale import quantity
from bridgescale.quantity import QuantityError


@pytest.mark.parametrize(
    ("text", "resource", "expected"),
    [
        ("250m", "cpu", 0.25),
        ("2", "cpu", 2.0),
        ("1.5", "cpu", 1.5),
        ("512Mi", "memory", 512 * 1024**2),
        ("1G", "memory", 1e9),
        ("10Gi", "gpu-memory", 10 * 1024**3),
        ("1.5Ki", "memory", 1536),
        ("0.5", "memory", 1),  # half a byte rounds up
    ],
)
def test_parse(text: str, resource: quantity.Resource, expected: float) -> None:
    assert quantity.parse(text, resource) == expected


@pytest.mark.parametrize("garbage", ["", "abc", "1.2.3", "-1", "12Qi", "NaN", "Inf", "1e999999"])
def test_parse_refuses_garbage_with_the_value_named(garbage: str) -> None:
    with pytest.raises(QuantityError, match=repr(garbage).replace("\\", "\\\\")[1:-1] or "''"):
        quantity.parse(garbage, "memory")


@pytest.mark.parametrize(
    ("cores", "text"), [(0.25, "250m"), (2.0, "2"), (0.0004, "1m"), (1.0001, "1001m"), (0, "0")]
)
def test_format_cpu(cores: float, text: str) -> None:
    assert quantity.format_cpu(cores) == text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (512 * 1024**2, "512Mi"),
        (10 * 1024**3, "10Gi"),
        (1e9, "1000000000"),
        (1536, "1536"),
        (2048, "2Ki"),
        (0, "0"),
    ],
)
def test_format_bytes(amount: float, text: str) -> None:
    assert quantity.format_bytes(amount) == text


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_cpu_round_trip_never_undersizes(cores: float) -> None:
    parsed = quantity.parse(quantity.format_cpu(cores), "cpu")
    assert parsed >= cores - 1e-9
    assert parsed - cores < 0.001 + 1e-9


@given(st.floats(min_value=0, max_value=2.0**50, allow_nan=False))
def test_bytes_round_trip_never_undersizes(amount: float) -> None:
    parsed = quantity.parse(quantity.format_bytes(amount), "memory")
    assert parsed >= amount
    assert parsed - amount <= 1


@given(st.one_of(st.just(math.nan), st.just(math.inf), st.floats(max_value=-1e-9)))
def test_formatting_refuses_non_finite_or_negative(value: float) -> None:
    with pytest.raises(QuantityError):
        quantity.format_quantity(value, "memory")
    with pytest.raises(QuantityError):
        quantity.format_quantity(value, "cpu")


@given(st.text(max_size=20))
def test_parse_of_any_text_is_a_value_or_a_quantity_error(text: str) -> None:
    try:
        value = quantity.parse(text, "cpu")
    except QuantityError:
        return
    assert math.isfinite(value)
    assert value >= 0


@pytest.mark.parametrize(
    ("value", "resource", "expected"),
    [(1e-10, "cpu", 0.001), (0.5, "memory", 1024**2), (0, "memory", 0)],
)
def test_a_positive_amount_never_rounds_to_nothing(
    value: float, resource: quantity.Resource, expected: float
) -> None:
    assert quantity.round_up(value, resource) == expected
    assert (quantity.format_cpu(value) == "0") == (value == 0)


@pytest.mark.parametrize("text", ["9223372036854775808", "16Ei", "9223372036854776k"])
def test_amounts_beyond_what_kubernetes_holds_are_refused(text: str) -> None:
    with pytest.raises(QuantityError, match="too large"):
        quantity.parse(text, "memory" if "k" not in text else "cpu")
