"""Checkpoints of one container's recommender state as a JSON-able dict, and back.

A fleet state is a dict of arrays with the container on the first axis; a checkpoint is one
container's slice of each array, as lists. Infinite and NaN values become strings, so the
dict survives a round trip through JSON (and the Kubernetes API).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bridgescale.models.base import FleetState

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, list):
        return [_number(v) for v in value]
    return _SPECIAL.get(value, value) if isinstance(value, str) else value


def save(state: FleetState, index: int) -> dict[str, Any]:
    """Container `index`'s state as a dict of plain lists and numbers."""
    return {key: _plain(array[index].tolist()) for key, array in state.items()}


def load(template: FleetState, checkpoints: Sequence[Mapping[str, Any]]) -> FleetState:
    """A fleet state from checkpoints, shaped like `template` (a `new_state(1)`)."""
    state: FleetState = {}
    for key, array in template.items():
        try:
            rows = [_number(checkpoint[key]) for checkpoint in checkpoints]
        except KeyError:
            raise ValueError(f"checkpoint: missing field {key!r}") from None
        state[key] = np.array(rows, dtype=array.dtype).reshape(len(rows), *array.shape[1:])
    return state
