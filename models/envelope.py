"""Pod envelope against per-container sizing, on a usage trace whose series are containers.

A series named `pod/container` belongs to the pod `pod` (a name without `/` is a pod of one
container). With pod-level resources a pod's containers share one budget: the envelope is sized
from the distribution of their summed usage (the peak of the sum), while per-container sizing
reserves the sum of the containers' own limits (the sum of the peaks). When the containers peak
at different times the first is smaller at the same risk.

The comparison covers pods of two or more containers, after each pod's warm-up days:
- footprint: the pod's limit (the envelope, or the sum of its containers' limits) summed over
  samples, over the pod's summed usage;
- overrun pod-days: days on which the summed usage passed the envelope, or any container passed
  its own limit. For memory these are OOM-days: the pod cgroup (envelope) or the container's
  cgroup (per-container) kills.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridgescale.models import registry
from bridgescale.models.backtest import WARM_UP_DAYS, Limits, UsageTrace
from bridgescale.models.base import DAY, FloatArray, IntArray, Recommender
from bridgescale.models.bridgescale import ENVELOPE_TUNING, BridgescaleRecommender

POD_SEPARATOR = "/"
POD_LEVEL_RESOURCES = ("cpu", "memory")  # what `spec.resources` of a pod may set
ENVELOPE_METRICS = (
    "pods",
    "per_container_footprint",
    "envelope_footprint",
    "saving",
    "per_container_overrun_days",
    "envelope_overrun_days",
)


def pod_name(series: str) -> str:
    """The pod of a series `pod/container`; a name without `/` is its own pod."""
    return series.rsplit(POD_SEPARATOR, 1)[0] if POD_SEPARATOR in series else series


def envelope_recommender(name: str) -> Recommender:
    """The recommender `name` as it sizes envelopes: bridgescale with its envelope tuning,
    the others as they are."""
    if name == registry.DEFAULT:
        return BridgescaleRecommender(tuning=dict(ENVELOPE_TUNING))
    return registry.create(name)


@dataclass(frozen=True)
class PodTrace:
    """The summed usage of each pod's containers, and which pod each container series is in.

    `pods.container[i]` indexes `pods.series` (pod names); `pod_of[c]` is the pod of the
    trace's series `c`. Only samples at the same timestamp are summed: containers of one pod
    are expected to be sampled together, as one scrape reports them.
    """

    pods: UsageTrace
    pod_of: IntArray
    containers: IntArray  # containers per pod


def pod_trace(trace: UsageTrace) -> PodTrace:
    names = [pod_name(s) for s in trace.series]
    codes, pods = pd.factorize(pd.Series(names), sort=False)
    pod_of = codes.astype(np.int64)
    frame = pd.DataFrame({"pod": pod_of[trace.container], "timestamp": trace.timestamp})
    for resource in trace.resources:
        frame[resource] = trace.usage[resource]
    summed = frame.groupby(["pod", "timestamp"], sort=True).sum().reset_index()
    summed_trace = UsageTrace(
        [str(p) for p in pods],
        summed["pod"].to_numpy(dtype=np.int64),
        summed["timestamp"].to_numpy(dtype=float),
        {r: summed[r].to_numpy(dtype=float) for r in trace.resources},
    )
    return PodTrace(summed_trace, pod_of, np.bincount(pod_of, minlength=len(pods)))


def compare(
    trace: UsageTrace, container_limits: Limits, pods: PodTrace, envelope_limits: Limits
) -> dict[str, dict[str, float]]:
    """Per resource a pod can size as a whole (cpu, memory; GPU memory is a claim's), the
    metrics of `ENVELOPE_METRICS` over the multi-container pods."""
    shared = pods.containers >= 2
    result = {}
    for resource in [r for r in trace.resources if r in POD_LEVEL_RESOURCES]:
        per_container = _per_container_frame(trace, container_limits, pods.pod_of, resource)
        envelope = _after_warm_up(
            _frame(
                pods.pods.container,
                pods.pods.timestamp,
                pods.pods.usage[resource],
                envelope_limits.at_samples(pods.pods, resource),
            )
        )
        per_container = per_container[shared[per_container["pod"].to_numpy()]]
        envelope = envelope[shared[envelope["pod"].to_numpy()]]
        result[resource] = _scores(per_container, envelope, int(shared.sum()))
    return result


def _per_container_frame(
    trace: UsageTrace, limits: Limits, pod_of: IntArray, resource: str
) -> pd.DataFrame:
    """One row per pod and timestamp: summed usage, summed limits, and whether any container
    passed its own limit."""
    frame = _frame(
        pod_of[trace.container],
        trace.timestamp,
        trace.usage[resource],
        limits.at_samples(trace, resource),
    )
    grouped = frame.groupby(["pod", "timestamp", "day"], sort=True).agg(
        usage=("usage", "sum"), limit=("limit", "sum"), over=("over", "any")
    )
    return _after_warm_up(grouped.reset_index())


def _frame(
    pod: IntArray, timestamp: FloatArray, usage: FloatArray, limit: FloatArray
) -> pd.DataFrame:
    frame = pd.DataFrame({"pod": pod, "timestamp": timestamp, "usage": usage, "limit": limit})
    frame["over"] = frame["usage"] > frame["limit"]
    frame["day"] = np.floor(frame["timestamp"] / DAY).astype(np.int64)
    return frame


def _after_warm_up(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows from each pod's third day on, with a limit in force (a limit of NaN: none yet)."""
    first_day = frame.groupby("pod")["day"].transform("min")
    keep = (frame["day"] >= first_day + WARM_UP_DAYS) & np.isfinite(frame["limit"])
    kept: pd.DataFrame = frame[keep]
    return kept


def _scores(per_container: pd.DataFrame, envelope: pd.DataFrame, pods: int) -> dict[str, float]:
    """Both sizings scored on the samples both have a limit for."""
    keys = ["pod", "timestamp"]
    both = per_container.merge(envelope, on=keys, suffixes=("_containers", "_envelope"))
    if both.empty:
        return {**dict.fromkeys(ENVELOPE_METRICS, float("nan")), "pods": float(pods)}
    usage = float(both["usage_envelope"].sum())
    containers = float(both["limit_containers"].sum()) / usage
    envelope_footprint = float(both["limit_envelope"].sum()) / usage
    days = both.groupby(["pod", "day_envelope"])[["over_containers", "over_envelope"]].any()
    return {
        "pods": float(pods),
        "per_container_footprint": containers,
        "envelope_footprint": envelope_footprint,
        "saving": 1.0 - envelope_footprint / containers,
        "per_container_overrun_days": float(days["over_containers"].mean()),
        "envelope_overrun_days": float(days["over_envelope"].mean()),
    }
