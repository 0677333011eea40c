"""The model's state for every tracked container, one row each, and what goes in and out of it.

Samples of all pods of a workload's container feed one row, as the VPA aggregates them. The
model is built to decide once an hour (its costs decay and its change budget count per call):
the first cycle of each hour commits a decision; the cycles in between ask the model on a copy
of the state what it would decide at the end of the hour with the samples seen so far, so a
peak of the hour in progress and OOM kills show at once without spending the budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bridgescale.models import checkpoint
from bridgescale.models.base import HOUR, OomEvents, Reason, Recommender, SampleBatch
from bridgescale.models.base import REASON_TEXT as MODEL_REASONS
from bridgescale.models.bridgescale import cpu_load_forecast
from bridgescale.quantity import MiB, Resource

MODEL_RESOURCE: dict[Resource, str] = {"cpu": "cpu", "memory": "memory", "gpu-memory": "vram"}
RESOURCE_CODE: dict[Resource, int] = {
    resource: code for code, resource in enumerate(MODEL_RESOURCE)
}
OOM_BUMP_RATIO = 1.2  # after an OOM kill, memory goes this far over the limit that was hit...
OOM_MIN_BUMP = 100 * MiB  # ...and at least this much
OOM_HOLD = 72 * HOUR  # the floor holds as long as the model's own memory peak guard
FULL_CONFIDENCE_SPAN = 7 * 24 * HOUR


@dataclass(frozen=True, order=True)
class ContainerKey:
    namespace: str
    kind: str
    workload: str
    container: str


@dataclass(frozen=True)
class Usage:
    """Points of one resource of one container (any of its workload's pods)."""

    key: ContainerKey
    resource: Resource
    times: Sequence[float] | np.ndarray
    values: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Saved:
    """A container's checkpoint, as `Fleet.restore_all` takes it."""

    key: ContainerKey
    state: Mapping[str, Any]
    history_end: float
    floor: float = 0.0
    floor_time: float = 0.0
    committed_hour: int = -1


@dataclass(frozen=True)
class OomKill:
    key: ContainerKey
    time: float
    memory_limit: float  # bytes: the limit that was hit (or the peak seen, without a limit)


@dataclass(frozen=True)
class ModelRecommendation:
    """What the model says for one container: amounts per resource, or why none."""

    target: dict[Resource, float] = field(default_factory=dict)
    lower_bound: dict[Resource, float] = field(default_factory=dict)
    upper_bound: dict[Resource, float] = field(default_factory=dict)
    missing: dict[Resource, str] = field(default_factory=dict)
    confidence: float = 0.0
    cpu_profile: tuple[float, ...] = ()  # expected mean cores per hour, from the current hour


def oom_floor(memory_limit: float) -> float:
    return max(memory_limit * OOM_BUMP_RATIO, memory_limit + OOM_MIN_BUMP)


class Fleet:
    def __init__(self, model: Recommender) -> None:
        self.model = model
        self.rows: dict[ContainerKey, int] = {}
        self.state = model.new_state(0)
        self.history_end = np.zeros(0)
        self.oom_floor = np.zeros(0)
        self.oom_time = np.zeros(0)
        # The hour whose recommendation the state has taken in: the model charges its
        # candidates and steps its limits once an hour, so a second call in the hour only looks.
        self.committed_hour = -1

    def row(self, key: ContainerKey) -> int:
        """The row of `key`, added (having seen nothing) if new."""
        self.add([key])
        return self.rows[key]

    def add(self, keys: Iterable[ContainerKey]) -> None:
        """Rows for the keys not tracked yet, having seen nothing: all in one go, as each
        addition copies the whole state."""
        missing = list(dict.fromkeys(k for k in keys if k not in self.rows))
        if missing:
            zeros = np.zeros(len(missing))
            self._append(missing, self.model.new_state(len(missing)), zeros, zeros, zeros)

    def _append(
        self,
        keys: list[ContainerKey],
        state: Mapping[str, Any],
        end: np.ndarray,
        floor: np.ndarray,
        when: np.ndarray,
    ) -> None:
        for name, array in state.items():
            self.state[name] = np.concatenate([self.state[name], array])
        self.history_end = np.concatenate([self.history_end, end])
        self.oom_floor = np.concatenate([self.oom_floor, floor])
        self.oom_time = np.concatenate([self.oom_time, when])
        for key in keys:
            self.rows[key] = len(self.rows)

    def restore(
        self,
        key: ContainerKey,
        saved: Mapping[str, Any],
        *,
        history_end: float,
        floor: float = 0.0,
        floor_time: float = 0.0,
    ) -> None:
        """Add `key` with a checkpointed state; raises ValueError if it does not fit the model."""
        problems = self.restore_all([Saved(key, saved, history_end, floor, floor_time)])
        if problems:
            raise problems[0][1]

    def restore_all(self, saved: Iterable[Saved]) -> list[tuple[ContainerKey, ValueError]]:
        """Add the checkpointed containers not tracked yet, in one go; those whose checkpoint
        does not fit the model are left out and returned with the reason."""
        problems: list[tuple[ContainerKey, ValueError]] = []
        kept: list[Saved] = []
        states = []
        template = self.model.new_state(1)
        taken: set[ContainerKey] = set()
        for item in saved:
            if item.key in self.rows or item.key in taken:
                continue
            try:
                states.append(checkpoint.load(template, [item.state]))
            except ValueError as error:
                problems.append((item.key, error))
                continue
            kept.append(item)
            taken.add(item.key)
        if kept:
            state = {name: np.concatenate([s[name] for s in states]) for name in template}
            self._append(
                [k.key for k in kept],
                state,
                np.array([k.history_end for k in kept]),
                np.array([k.floor for k in kept]),
                np.array([k.floor_time for k in kept]),
            )
            # Rows restored within the hour they took in are not charged again; rows tracked
            # before, if the hour is new to them, then take it in at the next hour instead.
            self.committed_hour = max(self.committed_hour, *(k.committed_hour for k in kept))
        return problems

    def save(self, key: ContainerKey) -> dict[str, Any]:
        return checkpoint.save(self.state, self.rows[key])

    def observe(self, usage: Iterable[Usage], oom_kills: Iterable[OomKill], end: float) -> int:
        """Fold new points (those after each row's history end) and OOM kills into the model;
        every row of `usage` and `oom_kills` is then read up to `end`. The points folded."""
        usage, oom_kills = list(usage), list(oom_kills)
        self.add([series.key for series in usage] + [kill.key for kill in oom_kills])
        rows, times, resources, values = [], [], [], []
        for series in usage:
            row = self.rows[series.key]
            stamps = np.asarray(series.times, np.float64)
            new = stamps > self.history_end[row]
            count = int(new.sum())
            if count:
                rows.append(np.full(count, row))
                times.append(stamps[new])
                resources.append(np.full(count, RESOURCE_CODE[series.resource]))
                values.append(np.asarray(series.values, np.float64)[new])
        points = sum(len(t) for t in times)
        kills = [k for k in oom_kills if k.time > self.history_end[self.rows[k.key]]]
        for kill in kills:
            # The kill is a memory peak above the limit: the model sees it as one.
            row = self.rows[kill.key]
            rows.append(np.array([row]))
            times.append(np.array([kill.time]))
            resources.append(np.array([RESOURCE_CODE["memory"]]))
            values.append(np.array([oom_floor(kill.memory_limit)]))
            self._raise_floor(row, oom_floor(kill.memory_limit), kill.time)
        if rows:
            ooms = _ooms([self.rows[k.key] for k in kills], kills)
            batch = _batch(
                np.concatenate(rows),
                np.concatenate(times),
                np.concatenate(resources),
                np.concatenate(values),
            )
            self.model.observe(self.state, batch, ooms)
            touched = np.unique(np.concatenate(rows))
            self.history_end[touched] = np.maximum(self.history_end[touched], end)
        return points

    def advance(self, keys: Iterable[ContainerKey], end: float) -> None:
        """Mark `keys` as read up to `end` (no points came for them)."""
        keys = list(keys)
        self.add(keys)
        rows = np.array([self.rows[key] for key in keys], dtype=np.int64)
        self.history_end[rows] = np.maximum(self.history_end[rows], end)

    def _raise_floor(self, row: int, floor: float, time: float) -> None:
        if floor >= self.oom_floor[row] or time - self.oom_time[row] > OOM_HOLD:
            self.oom_floor[row] = floor
            self.oom_time[row] = max(time, self.oom_time[row])

    def recommend(self, now: float) -> dict[ContainerKey, ModelRecommendation]:
        hour = math.floor(now / HOUR)
        if hour > self.committed_hour:
            raw = self.model.recommend(self.state, now)
            self.committed_hour = hour
        else:
            # As of the hour's end: the model reads only whole hours, and the hour in progress
            # would otherwise count only at the next commit.
            provisional = {k: v.copy() for k, v in self.state.items()}
            raw = self.model.recommend(provisional, (hour + 1) * HOUR)
        profiles = cpu_load_forecast(self.state, now)
        found = {}
        for key, row in self.rows.items():
            result = self._container(raw, row, now)
            if profiles is not None and np.isfinite(profiles[row]).all():
                result = replace(result, cpu_profile=tuple(float(v) for v in profiles[row]))
            found[key] = result
        return found

    def _container(self, raw: Mapping[str, Any], row: int, now: float) -> ModelRecommendation:
        result = ModelRecommendation()
        spans = []
        for resource, model_resource in MODEL_RESOURCE.items():
            found = raw.get(model_resource)
            if found is None or int(found.reason[row]) != Reason.NONE:
                reason = Reason(int(found.reason[row])) if found is not None else Reason.NO_SAMPLES
                result.missing[resource] = MODEL_REASONS[reason]
                continue
            result.target[resource] = float(found.target[row])
            result.lower_bound[resource] = float(found.lower_bound[row])
            result.upper_bound[resource] = float(found.upper_bound[row])
            spans.append(self._span(model_resource, row))
        self._apply_oom_floor(result, row, now)
        confidence = min(spans) / FULL_CONFIDENCE_SPAN if spans else 0.0
        return ModelRecommendation(
            result.target,
            result.lower_bound,
            result.upper_bound,
            result.missing,
            min(max(confidence, 0.0), 1.0),
        )

    def _span(self, model_resource: str, row: int) -> float:
        first = self.state.get(f"{model_resource}_first")
        last = self.state.get(f"{model_resource}_last")
        if first is None or last is None:
            return 0.0
        span = float(last[row] - first[row])
        return span if math.isfinite(span) else 0.0

    def _apply_oom_floor(self, result: ModelRecommendation, row: int, now: float) -> None:
        """After an OOM kill memory goes above the level that was hit, at once, model or not."""
        floor = float(self.oom_floor[row])
        if floor <= 0 or now - self.oom_time[row] > OOM_HOLD:
            return
        result.missing.pop("memory", None)
        for bound in (result.target, result.lower_bound, result.upper_bound):
            bound["memory"] = max(bound.get("memory", 0.0), floor)


def _batch(
    rows: np.ndarray, times: np.ndarray, resources: np.ndarray, values: np.ndarray
) -> SampleBatch:
    order = np.lexsort((times, rows))  # time order within each container
    usage = {}
    for resource, model_resource in MODEL_RESOURCE.items():
        column = np.where(resources == RESOURCE_CODE[resource], values, np.nan)
        usage[model_resource] = column[order]
    return SampleBatch(rows[order].astype(np.int64), times[order], usage)


def _ooms(rows: list[int], kills: list[OomKill]) -> OomEvents:
    if not kills:
        return OomEvents.none()
    return OomEvents(
        np.array(rows, np.int64),
        np.array([k.time for k in kills]),
        np.array([k.memory_limit for k in kills]),
    )
