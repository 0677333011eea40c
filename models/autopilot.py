"""`autopilot-window`: the moving-window recommender of Google's Autopilot (Rzadca et al.,
EuroSys 2020), with the parameters the paper gives for serving jobs.

Each sample goes with weight 1 into a decaying histogram (cpu half-life 12 h, memory and GPU
memory 48 h). The raw recommendation is the cpu p95 plus 10 % and the memory p98 plus 15 %; the
published one is the largest raw recommendation of the last hour, which with hourly cycles is
the larger of this cycle's and the previous one's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgescale.models import bookkeeping
from bridgescale.models.base import (
    HOUR,
    FleetRecommendations,
    FleetState,
    OomEvents,
    ResourceRecommendations,
    SampleBatch,
)
from bridgescale.models.histogram import BYTES_BUCKETS, CPU_BUCKETS, DecayingHistograms

HALF_LIFE = {"cpu": 12 * HOUR, "memory": 48 * HOUR, "vram": 48 * HOUR}
PERCENTILE = {"cpu": 0.95, "memory": 0.98, "vram": 0.98}
MARGIN = {"cpu": 0.10, "memory": 0.15, "vram": 0.15}
MIN_SAMPLES = 12


@dataclass(frozen=True)
class AutopilotWindowRecommender:
    name: str = "autopilot-window"

    @staticmethod
    def _histograms(resource: str) -> DecayingHistograms:
        shape = CPU_BUCKETS if resource == "cpu" else BYTES_BUCKETS
        return DecayingHistograms(resource, shape, HALF_LIFE[resource])

    def new_state(self, count: int) -> FleetState:
        state = bookkeeping.add_bookkeeping({}, count)
        for resource in HALF_LIFE:
            self._histograms(resource).add_to(state, count)
            state[f"{resource}_previous"] = np.full(count, np.nan)
            state[f"{resource}_previous_time"] = np.full(count, np.nan)
        return state

    def observe(self, state: FleetState, samples: SampleBatch, ooms: OomEvents) -> None:
        del ooms  # the moving window sees an OOM kill only through the usage before it
        for resource, mask in bookkeeping.valid_samples(state, samples).items():
            self._histograms(resource).add(
                state,
                samples.container[mask],
                samples.timestamp[mask],
                samples.usage[resource][mask],
            )

    def recommend(self, state: FleetState, now: float) -> FleetRecommendations:
        result: FleetRecommendations = {}
        for resource in bookkeeping.measured_resources(state):
            raw = self._histograms(resource).percentile(state, PERCENTILE[resource])
            raw = raw * (1 + MARGIN[resource])
            previous = state[f"{resource}_previous"]
            recent = now - state[f"{resource}_previous_time"] <= HOUR
            target = np.where(recent, np.fmax(raw, previous), raw)
            state[f"{resource}_previous"] = raw
            state[f"{resource}_previous_time"] = np.full(raw.shape, now)
            reason = bookkeeping.reasons(state, resource, now, MIN_SAMPLES, 0.0)
            result[resource] = ResourceRecommendations(
                target, raw, target.copy(), np.zeros_like(reason)
            ).with_reasons(reason)
        return result
