"""What every recommender tracks besides its model: valid and invalid sample counts, first and
last valid sample times per resource, and the reasons for not recommending derived from them."""

from __future__ import annotations

import numpy as np

from bridgescale.models.base import (
    HOUR,
    RESOURCES,
    BoolArray,
    FleetState,
    FloatArray,
    IntArray,
    Reason,
    SampleBatch,
)

STALE_AFTER = 6 * HOUR


def add_bookkeeping(state: FleetState, count: int) -> FleetState:
    for resource in RESOURCES:
        state[f"{resource}_valid"] = np.zeros(count, np.int64)
        state[f"{resource}_invalid"] = np.zeros(count, np.int64)
        state[f"{resource}_first"] = np.full(count, np.nan)
        state[f"{resource}_last"] = np.full(count, np.nan)
    return state


def valid_samples(state: FleetState, samples: SampleBatch) -> dict[str, BoolArray]:
    """Count the batch's samples per resource and return, per resource, which ones are valid.

    A resource absent from the batch, or NaN in a sample, is "not measured" and not counted; an
    infinite or negative value is counted as invalid.
    """
    masks: dict[str, BoolArray] = {}
    for resource, values in samples.usage.items():
        measured = ~np.isnan(values)
        valid = measured & np.isfinite(values) & (values >= 0)
        masks[resource] = valid
        count = state[f"{resource}_valid"].shape[0]
        state[f"{resource}_valid"] += np.bincount(samples.container[valid], minlength=count)
        invalid = measured & ~valid
        state[f"{resource}_invalid"] += np.bincount(samples.container[invalid], minlength=count)
        _update_span(state, resource, samples.container[valid], samples.timestamp[valid])
    return masks


def _update_span(state: FleetState, resource: str, container: IntArray, time: FloatArray) -> None:
    if container.size == 0:
        return
    first = state[f"{resource}_first"]
    last = state[f"{resource}_last"]
    earliest = np.full(first.shape, np.inf)
    np.minimum.at(earliest, container, time)
    latest = np.full(last.shape, -np.inf)
    np.maximum.at(latest, container, time)
    state[f"{resource}_first"] = np.fmin(first, np.where(np.isinf(earliest), np.nan, earliest))
    state[f"{resource}_last"] = np.fmax(last, np.where(np.isinf(latest), np.nan, latest))


def reasons(
    state: FleetState, resource: str, now: float, min_samples: int, min_span: float
) -> IntArray:
    """Why each container has no recommendation for `resource` (0 where it may have one)."""
    valid = state[f"{resource}_valid"]
    invalid = state[f"{resource}_invalid"]
    span = np.nan_to_num(state[f"{resource}_last"] - state[f"{resource}_first"], nan=0.0)
    age = now - state[f"{resource}_last"]
    reason = np.full(valid.shape, int(Reason.NONE), np.int64)
    reason[age > STALE_AFTER] = Reason.STALE
    reason[(valid < min_samples) | (span < min_span)] = Reason.THIN_HISTORY
    reason[invalid > valid] = Reason.INVALID_SAMPLES
    reason[valid == 0] = Reason.NO_SAMPLES
    return reason


def measured_resources(state: FleetState) -> list[str]:
    """Resources for which at least one container has had a sample, valid or not."""
    return [r for r in RESOURCES if (state[f"{r}_valid"].any() or state[f"{r}_invalid"].any())]
