"""`vpa`: the Kubernetes VPA recommender's rules, reimplemented on fleet arrays.

- cpu: every sample goes into a decaying histogram (half-life 24 h) with weight
  max(cpu request, 0.1 core); target p90, lower bound p50, upper bound p95.
- memory: one peak per 24 h window per container goes into a decaying histogram (half-life
  24 h); a larger sample in the same window replaces the window's peak. Windows start at the
  first sample and follow each other back to back. Same percentiles as cpu.
- An OOM kill adds max(limit + 100 MiB, limit x 1.2) (limit or window peak, whichever is
  larger) as a memory peak of its window.
- 15 % margin on all three, then the upper bound is scaled by (1 + 1/confidence) and the lower
  bound by (1 + 0.001/confidence)^-2, where confidence is the history length in days (the
  lesser of the cpu span and the cpu sample count over 1440).
- Floors: 25 millicores and 250 MiB.

GPU memory is not something the VPA knows; it is handled here with the memory rules, so that
the baseline has a figure for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgescale.models import bookkeeping
from bridgescale.models.base import (
    DAY,
    BoolArray,
    FleetRecommendations,
    FleetState,
    FloatArray,
    IntArray,
    OomEvents,
    Reason,
    ResourceRecommendations,
    SampleBatch,
)
from bridgescale.models.histogram import BYTES_BUCKETS, CPU_BUCKETS, DecayingHistograms

MIB = 1024.0 * 1024.0
MARGIN = 0.15
MIN_CPU = 0.025
MIN_MEMORY = 250 * MIB
MIN_SAMPLE_WEIGHT = 0.1
OOM_MIN_BUMP = 100 * MIB
OOM_BUMP_RATIO = 1.2
PEAK_WINDOW = DAY
TARGET, LOWER, UPPER = 0.9, 0.5, 0.95


@dataclass(frozen=True)
class VpaRecommender:
    name: str = "vpa"
    half_life: float = DAY

    def _histograms(self, resource: str) -> DecayingHistograms:
        shape = CPU_BUCKETS if resource == "cpu" else BYTES_BUCKETS
        return DecayingHistograms(resource, shape, self.half_life)

    def new_state(self, count: int) -> FleetState:
        state = bookkeeping.add_bookkeeping({}, count)
        for resource in ("cpu", "memory", "vram"):
            self._histograms(resource).add_to(state, count)
        for resource in ("memory", "vram"):
            state[f"{resource}_window_end"] = np.full(count, np.nan)
            state[f"{resource}_peak"] = np.zeros(count)
            state[f"{resource}_oom_peak"] = np.zeros(count)
        return state

    def observe(self, state: FleetState, samples: SampleBatch, ooms: OomEvents) -> None:
        valid = bookkeeping.valid_samples(state, samples)
        if "cpu" in valid:
            self._observe_cpu(state, samples, valid["cpu"])
        for resource in ("memory", "vram"):
            if resource in valid:
                mask = valid[resource]
                self._observe_peaks(
                    state,
                    resource,
                    samples.container[mask],
                    samples.timestamp[mask],
                    samples.usage[resource][mask],
                )
        for container, time, limit in zip(
            ooms.container, ooms.timestamp, ooms.memory_limit, strict=True
        ):
            self._record_oom(state, int(container), float(time), float(limit))

    def _observe_cpu(self, state: FleetState, samples: SampleBatch, mask: BoolArray) -> None:
        request = samples.cpu_request
        weight = np.full(samples.size, MIN_SAMPLE_WEIGHT)
        if request is not None:
            weight = np.fmax(request, MIN_SAMPLE_WEIGHT)
        self._histograms("cpu").add(
            state,
            samples.container[mask],
            samples.timestamp[mask],
            samples.usage["cpu"][mask],
            weight=weight[mask],
        )

    def _observe_peaks(
        self,
        state: FleetState,
        resource: str,
        container: IntArray,
        time: FloatArray,
        value: FloatArray,
    ) -> None:
        """Fold samples into per-window peaks; each window's peak is one histogram sample."""
        if container.size == 0:
            return
        window_end = state[f"{resource}_window_end"]
        first_time = np.full(window_end.shape, np.inf)
        np.minimum.at(first_time, container, time)
        starting = np.isnan(window_end) & np.isfinite(first_time)
        window_end[starting] = first_time[starting]
        current = window_end[container]
        behind = time - current
        sample_end = np.where(
            behind < 0, current, current + (np.floor(behind / PEAK_WINDOW) + 1) * PEAK_WINDOW
        )
        # Samples of one batch span at most a few windows: fold one window end at a time.
        for end in np.unique(sample_end):
            in_window = sample_end == end
            self._fold_window(state, resource, container[in_window], end, value[in_window])

    def _fold_window(
        self,
        state: FleetState,
        resource: str,
        container: IntArray,
        end: float,
        value: FloatArray,
    ) -> None:
        peak = np.zeros(state[f"{resource}_peak"].shape)
        np.maximum.at(peak, container, value)
        touched = np.unique(container)
        histograms = self._histograms(resource)
        window_end = state[f"{resource}_window_end"]
        old = np.maximum(state[f"{resource}_peak"], state[f"{resource}_oom_peak"])
        same = touched[window_end[touched] == end]
        replace = same[(old[same] > 0) & (peak[same] > old[same])]
        at_end = np.full(replace.size, end)
        histograms.add(state, replace, at_end, old[replace], sign=-1.0)
        histograms.add(state, replace, at_end, peak[replace])
        state[f"{resource}_peak"][replace] = peak[replace]
        new = touched[window_end[touched] != end]
        window_end[new] = end
        state[f"{resource}_oom_peak"][new] = 0.0
        state[f"{resource}_peak"][new] = peak[new]
        histograms.add(state, new, np.full(new.size, end), peak[new])

    def _record_oom(self, state: FleetState, container: int, time: float, limit: float) -> None:
        window_end = state["memory_window_end"]
        if np.isnan(window_end[container]) or time < window_end[container] - PEAK_WINDOW:
            return  # too old, or no memory sample yet: the VPA drops it too
        used = max(limit, float(state["memory_peak"][container]))
        needed = max(used + OOM_MIN_BUMP, used * OOM_BUMP_RATIO)
        histograms = self._histograms("memory")
        end = float(window_end[container])
        one = np.array([container])
        if time >= end:
            window_end[container] = end + (np.floor((time - end) / PEAK_WINDOW) + 1) * PEAK_WINDOW
            state["memory_peak"][container] = 0.0
        else:
            old = max(
                float(state["memory_peak"][container]), float(state["memory_oom_peak"][container])
            )
            if not (old > 0 and needed > old):
                return
            histograms.add(state, one, np.array([end]), np.array([old]), sign=-1.0)
        state["memory_oom_peak"][container] = needed
        at = np.array([float(window_end[container])])
        histograms.add(state, one, at, np.array([needed]))

    def recommend(self, state: FleetState, now: float) -> FleetRecommendations:
        result: FleetRecommendations = {}
        for resource in bookkeeping.measured_resources(state):
            confidence = np.maximum(_confidence(state, "cpu"), _confidence(state, resource))
            histograms = self._histograms(resource)
            floor = MIN_CPU if resource == "cpu" else MIN_MEMORY
            target = histograms.percentile(state, TARGET) * (1 + MARGIN)
            lower = histograms.percentile(state, LOWER) * (1 + MARGIN)
            upper = histograms.percentile(state, UPPER) * (1 + MARGIN)
            with np.errstate(divide="ignore", invalid="ignore"):
                upper = upper * (1 + 1 / confidence)
                lower = lower * (1 + 0.001 / confidence) ** -2
            values = [np.fmax(v, floor) for v in (target, lower, upper)]
            reason = bookkeeping.reasons(state, resource, now, min_samples=1, min_span=0.0)
            reason[(confidence <= 0) & (reason == 0)] = Reason.THIN_HISTORY
            reason[np.isnan(target) & (reason == 0)] = Reason.NO_SAMPLES
            result[resource] = ResourceRecommendations(
                values[0], values[1], values[2], np.zeros_like(reason)
            ).with_reasons(reason)
        return result


def _confidence(state: FleetState, resource: str) -> FloatArray:
    """History length in days: the lesser of the span and the sample count over 1440 (the VPA
    counts one sample a minute). The VPA uses cpu samples for every resource; a container
    without cpu samples falls back on the resource's own."""
    span_days = np.nan_to_num(state[f"{resource}_last"] - state[f"{resource}_first"], nan=0.0)
    count_days = state[f"{resource}_valid"] / 1440.0
    result: FloatArray = np.minimum(span_days / DAY, count_days)
    return result
