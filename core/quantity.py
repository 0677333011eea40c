"""Kubernetes quantities for the three resources bridgescale sizes.

Parsing uses the Kubernetes client's own parser; formatting writes the canonical forms people
read in `kubectl get`: cpu in millicores or cores, memory and GPU memory in binary units when
exact, else in bytes. Values inside bridgescale are plain floats: cores and bytes.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Literal, get_args

from kubernetes.utils import parse_quantity

Resource = Literal["cpu", "memory", "gpu-memory"]
# The container name that stands for a whole pod's envelope (pod-level `spec.resources`) in
# recommendations, checkpoints and metrics, as cAdvisor names a pod's own cgroup.
POD = ""
RESOURCES: tuple[Resource, ...] = get_args(Resource)
MiB = 1024**2
GiB = 1024**3
_BINARY_SUFFIXES = (("Ti", 1024**4), ("Gi", GiB), ("Mi", MiB), ("Ki", 1024))
# Kubernetes holds a quantity's value as a 64-bit integer (cpu in millicores): anything larger
# is no real size, and the API server could not store it as one.
_MAX_INT64 = Decimal(2**63 - 1)
MAX_BYTES = float(_MAX_INT64)
MAX_CORES = MAX_BYTES / 1000


class QuantityError(ValueError):
    """A quantity that cannot be used; the message names the value and why."""


def parse(value: str | int | float, resource: Resource) -> float:
    """Cores for cpu, bytes for memory and gpu-memory; raises QuantityError on garbage.

    Negative, NaN or infinite values are refused: no resource is sized by them.
    """
    try:
        amount: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation) as error:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from error
    if not amount.is_finite():
        raise QuantityError(f"{value!r} is not a finite quantity")
    if amount < 0:
        raise QuantityError(f"{value!r} is negative; {resource} must be at least 0")
    if amount * (1000 if resource == "cpu" else 1) > _MAX_INT64:
        raise QuantityError(f"{value!r} is too large for {resource}")
    result = float(amount)
    if resource != "cpu" and not result.is_integer():
        result = math.ceil(result)  # bytes are whole; round up, never under-size
    return result


def largest(resource: Resource) -> float:
    """The largest amount of `resource` Kubernetes can hold."""
    return MAX_CORES if resource == "cpu" else MAX_BYTES


def format_cpu(cores: float) -> str:
    """Millicores rounded up (the kubelet's granularity): 0.25 -> "250m", 2.0 -> "2"."""
    _check(cores, "cpu")
    millicores = _units_up(cores, 0.001)
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_bytes(amount: float, resource: Resource = "memory") -> str:
    """Whole bytes rounded up, in the largest binary unit that divides them exactly."""
    _check(amount, resource)
    whole = math.ceil(amount)
    for suffix, size in _BINARY_SUFFIXES:
        if whole and whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def format_quantity(value: float, resource: Resource) -> str:
    return format_cpu(value) if resource == "cpu" else format_bytes(value, resource)


def round_up(value: float, resource: Resource) -> float:
    """Round a recommendation up to a size people would write: 1 millicore for cpu, 1 MiB for
    memory and GPU memory."""
    _check(value, resource)
    if resource == "cpu":
        return _units_up(value, 0.001) / 1000
    return float(_units_up(value, MiB) * MiB)


def _units_up(value: float, unit: float) -> int:
    """Whole units at or above `value`, float noise (a millionth of a unit) aside; a positive
    amount is at least one unit, never rounded to nothing."""
    units = math.ceil(round(value / unit, 6))
    return max(units, 1) if value > 0 else units


def _check(value: float, resource: Resource) -> None:
    if not math.isfinite(value) or value < 0:
        raise QuantityError(f"{resource} {value!r} is not a finite, non-negative amount")
