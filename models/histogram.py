"""Decaying histograms with exponentially growing buckets, one row per container.

The bucketing follows the VPA recommender: bucket `i` starts at
`first * (ratio**i - 1) / (ratio - 1)`, the last bucket is open ended, and a percentile is the
end of the bucket where the cumulative weight reaches it. A sample's weight doubles every
half-life relative to a per-container reference time, so old samples fade without a pass over
the history; the reference moves forward before the factors grow too large for a float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridgescale.models.base import FleetState, FloatArray, IntArray

EPSILON = 1e-4  # bucket weights below this count as empty, as in the VPA
_MAX_EXPONENT = 60.0


@dataclass(frozen=True)
class HistogramShape:
    first_bucket: float
    ratio: float
    maximum: float

    @property
    def buckets(self) -> int:
        growth = math.log(self.maximum * (self.ratio - 1) / self.first_bucket + 1)
        return math.ceil(growth / math.log(self.ratio)) + 1

    def bucket_of(self, values: FloatArray) -> IntArray:
        scaled = np.maximum(values, 0.0) * (self.ratio - 1) / self.first_bucket + 1
        index = np.floor(np.log(scaled) / math.log(self.ratio)).astype(np.int64)
        return np.clip(index, 0, self.buckets - 1)

    def bucket_start(self, index: IntArray) -> FloatArray:
        start: FloatArray = self.first_bucket * (self.ratio ** index.astype(float) - 1)
        return start / (self.ratio - 1)


CPU_BUCKETS = HistogramShape(first_bucket=0.001, ratio=1.05, maximum=1000.0)
BYTES_BUCKETS = HistogramShape(first_bucket=1e7, ratio=1.05, maximum=1e12)


@dataclass(frozen=True)
class DecayingHistograms:
    """Histograms stored in a fleet state under `key`; `half_life` in seconds."""

    key: str
    shape: HistogramShape
    half_life: float

    def add_to(self, state: FleetState, count: int) -> None:
        state[f"{self.key}_weights"] = np.zeros((count, self.shape.buckets))
        state[f"{self.key}_reference"] = np.full(count, np.nan)

    def add(
        self,
        state: FleetState,
        container: IntArray,
        time: FloatArray,
        value: FloatArray,
        *,
        weight: FloatArray | None = None,
        sign: float = 1.0,
    ) -> None:
        """Add (or with `sign=-1`, subtract) samples, each of weight 1 unless `weight` says."""
        if container.size == 0:
            return
        if weight is None:
            weight = np.ones(container.size)
        self._move_reference(state, container, time)
        weights = state[f"{self.key}_weights"]
        reference = state[f"{self.key}_reference"][container]
        decayed = weight * np.exp2((time - reference) / self.half_life)
        flat = container * self.shape.buckets + self.shape.bucket_of(value)
        delta = np.bincount(flat, weights=decayed, minlength=weights.size)
        weights += sign * delta.reshape(weights.shape)
        if sign < 0:
            weights[weights < EPSILON] = 0.0

    def _move_reference(self, state: FleetState, container: IntArray, time: FloatArray) -> None:
        reference = state[f"{self.key}_reference"]
        latest = np.full(reference.shape, -np.inf)
        np.maximum.at(latest, container, time)
        fresh = np.isnan(reference) & np.isfinite(latest)
        reference[fresh] = latest[fresh]
        exponent = (latest - reference) / self.half_life
        moving = np.isfinite(exponent) & (exponent > _MAX_EXPONENT)
        if moving.any():
            shift = np.floor(exponent[moving])
            state[f"{self.key}_weights"][moving] *= np.exp2(-shift)[:, None]
            reference[moving] += shift * self.half_life

    def percentile(self, state: FleetState, fraction: float) -> FloatArray:
        """The percentile of each row; NaN for an empty row."""
        weights = state[f"{self.key}_weights"]
        kept = np.where(weights >= EPSILON, weights, 0.0)
        cumulative = np.cumsum(kept, axis=1)
        total = cumulative[:, -1]
        reached = cumulative >= (fraction * total)[:, None]
        index = np.argmax(reached, axis=1)
        last = self.shape.buckets - 1
        end = np.where(
            index < last, self.shape.bucket_start(index + 1), self.shape.bucket_start(index)
        )
        return np.where(total > 0, end, np.nan)
