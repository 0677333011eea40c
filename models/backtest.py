"""Causal replay of a usage trace through a recommender, and the metrics of the limits it set.

At each UTC hour boundary the recommender sees the samples strictly before that instant and
returns targets; a target becomes the limit until the next boundary (without a recommendation
the previous limit stays). Memory samples above the memory limit in force are fed back as OOM
kills, as a cluster would report them. The `oracle` is not causal: each day's limit is that
day's own maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridgescale.models.base import (
    DAY,
    HOUR,
    RESOURCES,
    FloatArray,
    IntArray,
    OomEvents,
    Recommender,
    SampleBatch,
)

WARM_UP_DAYS = 2
METRICS = (
    "relative_slack_mean",
    "relative_slack_median",
    "overrun_day_fraction",
    "overrun_sample_fraction",
    "changes_per_day_mean",
    "changes_per_day_p99",
    "footprint",
)


@dataclass(frozen=True)
class UsageTrace:
    """Samples of many series, grouped by series and in time order within each.

    `usage[resource]` has one value per sample; resources a trace lacks are absent.
    """

    series: list[str]
    container: IntArray
    timestamp: FloatArray
    usage: dict[str, FloatArray]

    def __post_init__(self) -> None:
        size = self.container.shape[0]
        if self.timestamp.shape != (size,):
            raise ValueError("timestamp: one value per sample expected")
        for resource, values in self.usage.items():
            if resource not in RESOURCES or values.shape != (size,):
                raise ValueError(f"usage[{resource!r}]: unknown or not one value per sample")

    @property
    def resources(self) -> list[str]:
        return [r for r in RESOURCES if r in self.usage]


@dataclass(frozen=True)
class Limits:
    """The limit in force per series and hour: `values[resource][series, hour - first_hour]`."""

    first_hour: int
    values: dict[str, FloatArray]

    def at_samples(self, trace: UsageTrace, resource: str) -> FloatArray:
        hour = np.floor(trace.timestamp / HOUR).astype(np.int64) - self.first_hour
        result: FloatArray = self.values[resource][trace.container, hour]
        return result


def replay(trace: UsageTrace, recommender: Recommender) -> Limits:
    """Run `recommender` causally over `trace`, one cycle per hour boundary."""
    hour_of = np.floor(trace.timestamp / HOUR).astype(np.int64)
    order = np.lexsort((trace.timestamp, trace.container, hour_of))
    hours = hour_of[order]
    first, last = int(hours[0]), int(hours[-1])
    count = len(trace.series)
    limits = {r: np.full((count, last - first + 2), np.nan) for r in trace.resources}
    state = recommender.new_state(count)
    edges = np.searchsorted(hours, np.arange(first, last + 2))
    for step in range(1, last - first + 2):
        chunk = order[edges[step - 1] : edges[step]]
        in_force = {r: limits[r][:, step - 1] for r in trace.resources}
        samples = SampleBatch(
            trace.container[chunk],
            trace.timestamp[chunk],
            {r: trace.usage[r][chunk] for r in trace.resources},
            cpu_request=in_force["cpu"][trace.container[chunk]] if "cpu" in in_force else None,
        )
        recommender.observe(state, samples, _ooms(samples, in_force.get("memory")))
        recommendations = recommender.recommend(state, float((first + step) * HOUR))
        for resource, column in in_force.items():
            proposal = recommendations.get(resource)
            kept = column.copy()
            if proposal is not None:
                has = proposal.reason == 0
                kept[has] = proposal.target[has]
            limits[resource][:, step] = kept
    return Limits(first, limits)


def _ooms(samples: SampleBatch, memory_limit: FloatArray | None) -> OomEvents:
    if memory_limit is None or "memory" not in samples.usage:
        return OomEvents.none()
    limit = memory_limit[samples.container]
    over = samples.usage["memory"] > limit
    container = samples.container[over]
    _, first = np.unique(container, return_index=True)
    return OomEvents(container[first], samples.timestamp[over][first], limit[over][first])


def oracle(trace: UsageTrace) -> Limits:
    """Each series-day's limit is that day's own maximum usage (clairvoyant)."""
    hour_of = np.floor(trace.timestamp / HOUR).astype(np.int64)
    first, last = int(hour_of.min()), int(hour_of.max())
    hours = np.arange(first, last + 2)
    limits = {}
    for resource in trace.resources:
        frame = pd.DataFrame(
            {
                "series": trace.container,
                "day": np.floor(trace.timestamp / DAY).astype(np.int64),
                "usage": trace.usage[resource],
            }
        )
        daily = frame.groupby(["series", "day"])["usage"].max().unstack()
        day_of_hour = np.floor(hours * HOUR / DAY).astype(np.int64)
        table = daily.reindex(index=range(len(trace.series)), columns=day_of_hour)
        limits[resource] = table.to_numpy(dtype=float)
    return Limits(first, limits)


def metrics(trace: UsageTrace, limits: Limits) -> dict[str, dict[str, float]]:
    """The backtest's metrics per resource, after each series' first two days."""
    day = np.floor(trace.timestamp / DAY).astype(np.int64)
    first_day = pd.Series(day).groupby(trace.container).transform("min").to_numpy()
    scored = day >= first_day + WARM_UP_DAYS
    result = {}
    for resource in trace.resources:
        limit = limits.at_samples(trace, resource)
        usage = trace.usage[resource]
        keep = scored & np.isfinite(limit) & np.isfinite(usage)
        frame = pd.DataFrame(
            {
                "series": trace.container[keep],
                "day": day[keep],
                "usage": usage[keep],
                "limit": limit[keep],
            }
        )
        frame["over"] = frame["usage"] > frame["limit"]
        result[resource] = _resource_metrics(frame, _changes_per_day(limits, resource))
    return result


def _resource_metrics(frame: pd.DataFrame, changes: pd.Series) -> dict[str, float]:
    if frame.empty:
        return dict.fromkeys(METRICS, float("nan"))
    days = frame.groupby(["series", "day"]).agg(
        mean_limit=("limit", "mean"),
        p95=("usage", lambda u: float(np.percentile(u, 95))),
        over=("over", "any"),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        slack = ((days["mean_limit"] - days["p95"]) / days["mean_limit"]).replace(
            [np.inf, -np.inf], np.nan
        )
    per_day = changes.reindex(days.index, fill_value=0)
    usage_total = float(frame["usage"].sum())
    return {
        "relative_slack_mean": float(slack.mean()),
        "relative_slack_median": float(slack.median()),
        "overrun_day_fraction": float(days["over"].mean()),
        "overrun_sample_fraction": float(frame["over"].mean()),
        "changes_per_day_mean": float(per_day.mean()),
        "changes_per_day_p99": float(np.percentile(per_day, 99)),
        "footprint": float(frame["limit"].sum() / usage_total) if usage_total else float("nan"),
    }


def _changes_per_day(limits: Limits, resource: str) -> pd.Series:
    values = limits.values[resource]
    changed = (
        np.isfinite(values[:, 1:]) & np.isfinite(values[:, :-1]) & (values[:, 1:] != values[:, :-1])
    )
    series, step = np.nonzero(changed)
    day = np.floor((limits.first_hour + step + 1) * HOUR / DAY).astype(np.int64)
    counts: pd.Series = (
        pd.Series(1, index=pd.MultiIndex.from_arrays([series, day])).groupby(level=[0, 1]).sum()
    )
    counts.index.names = ["series", "day"]
    return counts


@dataclass(frozen=True)
class LimitChange:
    series: str
    timestamp: int
    resource: str
    limit: float


def limit_changes(trace: UsageTrace, limits: Limits) -> list[LimitChange]:
    """One row per change of limit, the first row of each series setting its initial limit."""
    rows = []
    for resource in trace.resources:
        values = limits.values[resource]
        previous = np.concatenate([np.full((values.shape[0], 1), np.nan), values[:, :-1]], 1)
        changed = np.isfinite(values) & ~(values == previous)
        for series, step in zip(*np.nonzero(changed), strict=True):
            time = (limits.first_hour + int(step)) * int(HOUR)
            rows.append(
                LimitChange(trace.series[series], time, resource, float(values[series, step]))
            )
    rows.sort(key=lambda row: (row.series, row.timestamp, RESOURCES.index(row.resource)))
    return rows
