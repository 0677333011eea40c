"""`krr`: krr's "simple" strategy: cpu at the 95th percentile of the samples of the last 14
days, memory (and GPU memory) at their maximum plus 15 %, and nothing with fewer than 100
samples. krr has no bounds of its own: lower and upper bound equal the target.

krr asks Prometheus for the whole window at every run, so this baseline keeps the raw window:
its state is not compact, unlike the other recommenders'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgescale.models import bookkeeping
from bridgescale.models.base import (
    DAY,
    FleetRecommendations,
    FleetState,
    OomEvents,
    Reason,
    ResourceRecommendations,
    SampleBatch,
)

HISTORY = 14 * DAY
CPU_PERCENTILE = 95.0
MEMORY_BUFFER = 0.15
POINTS_REQUIRED = 100


@dataclass(frozen=True)
class KrrRecommender:
    name: str = "krr"

    def new_state(self, count: int) -> FleetState:
        state = bookkeeping.add_bookkeeping({}, count)
        for resource in ("cpu", "memory", "vram"):
            state[f"{resource}_times"] = np.empty(count, dtype=object)
            state[f"{resource}_values"] = np.empty(count, dtype=object)
            for index in range(count):
                state[f"{resource}_times"][index] = np.zeros(0)
                state[f"{resource}_values"][index] = np.zeros(0)
        return state

    def observe(self, state: FleetState, samples: SampleBatch, ooms: OomEvents) -> None:
        del ooms  # the simple strategy ignores OOM kills by default
        valid = bookkeeping.valid_samples(state, samples)
        for resource, mask in valid.items():
            container = samples.container[mask]
            if container.size == 0:
                continue
            order = np.argsort(container, kind="stable")
            container = container[order]
            times = samples.timestamp[mask][order]
            values = samples.usage[resource][mask][order]
            starts = np.searchsorted(container, np.unique(container))
            for chunk_times, chunk_values, index in zip(
                np.split(times, starts[1:]),
                np.split(values, starts[1:]),
                np.unique(container),
                strict=True,
            ):
                self._append(state, resource, int(index), chunk_times, chunk_values)

    @staticmethod
    def _append(
        state: FleetState, resource: str, index: int, times: np.ndarray, values: np.ndarray
    ) -> None:
        all_times = np.concatenate([state[f"{resource}_times"][index], times])
        all_values = np.concatenate([state[f"{resource}_values"][index], values])
        keep = all_times >= all_times[-1] - HISTORY
        state[f"{resource}_times"][index] = all_times[keep]
        state[f"{resource}_values"][index] = all_values[keep]

    def recommend(self, state: FleetState, now: float) -> FleetRecommendations:
        result: FleetRecommendations = {}
        for resource in bookkeeping.measured_resources(state):
            target = np.array(
                [
                    _proposal(resource, times, values, now)
                    for times, values in zip(
                        state[f"{resource}_times"], state[f"{resource}_values"], strict=True
                    )
                ]
            )
            reason = bookkeeping.reasons(state, resource, now, POINTS_REQUIRED, 0.0)
            reason[np.isnan(target) & (reason == 0)] = Reason.THIN_HISTORY
            result[resource] = ResourceRecommendations(
                target, target.copy(), target.copy(), np.zeros_like(reason)
            ).with_reasons(reason)
        return result


def _proposal(resource: str, times: np.ndarray, values: np.ndarray, now: float) -> float:
    window = values[times >= now - HISTORY]
    if window.size < POINTS_REQUIRED:
        return float("nan")
    if resource == "cpu":
        return float(np.percentile(window, CPU_PERCENTILE))
    return float(window.max() * (1 + MEMORY_BUFFER))
