"""Recommendations as they are published: capped by the container's policy, rounded to sizes
people write, and written as a ResourceRecommendation status or in a VPA's own format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import (
    POD,
    RESOURCES,
    QuantityError,
    Resource,
    format_quantity,
    parse,
    round_up,
)
from bridgescale.recommender.fleet import ModelRecommendation

HORIZON = "1h"  # the model forecasts the coming hour's peak
LOAD_STEP_SECONDS = 3600
PROVIDED = "RecommendationProvided"
PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
BOUND_FIELDS = ("target", "lowerBound", "upperBound", "uncappedTarget")
NUMBER_SLACK = 0.01  # of a plain number in a status (cores of a load forecast, a confidence)


@dataclass(frozen=True)
class ContainerResult:
    """One container's published recommendation; a resource is absent when there is none."""

    container: str
    model: str
    target: dict[Resource, float] = field(default_factory=dict)
    lower_bound: dict[Resource, float] = field(default_factory=dict)
    upper_bound: dict[Resource, float] = field(default_factory=dict)
    uncapped_target: dict[Resource, float] = field(default_factory=dict)
    missing: dict[Resource, str] = field(default_factory=dict)
    confidence: float = 0.0
    cpu_profile: tuple[float, ...] = ()  # expected mean cores per hour, from the current hour

    def bounds(self) -> dict[str, dict[Resource, float]]:
        return {
            "target": self.target,
            "lowerBound": self.lower_bound,
            "upperBound": self.upper_bound,
            "uncappedTarget": self.uncapped_target,
        }


def cap(
    container: str,
    model: str,
    found: ModelRecommendation,
    policy: WorkloadPolicy,
    *,
    has_gpu_claim: bool,
) -> ContainerResult:
    """The model's amounts within the policy: controlled resources only, GPU memory only for
    containers with a claim, each bound clamped to min/max, lower <= target <= upper."""
    result = ContainerResult(
        container, model, confidence=found.confidence, cpu_profile=found.cpu_profile
    )
    for resource in RESOURCES:
        if resource not in policy.controlled or (resource == "gpu-memory" and not has_gpu_claim):
            continue
        if resource not in found.target:
            result.missing[resource] = found.missing.get(resource, "no usage samples")
            continue
        target = round_up(policy.clamp(resource, found.target[resource]), resource)
        result.uncapped_target[resource] = round_up(found.target[resource], resource)
        result.target[resource] = target
        lower = policy.clamp(resource, found.lower_bound.get(resource, target))
        upper = policy.clamp(resource, found.upper_bound.get(resource, target))
        result.lower_bound[resource] = min(round_up(lower, resource), target)
        result.upper_bound[resource] = max(round_up(upper, resource), target)
    return result


def quantities(amounts: Mapping[Resource, float]) -> dict[str, str]:
    return {resource: format_quantity(value, resource) for resource, value in amounts.items()}


def _timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: Sequence[Mapping[str, Any]],
    kind: str,
    status: bool,
    *,
    reason: str,
    message: str,
    now: dt.datetime,
) -> dict[str, str]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    text = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    changed = before is None or before.get("status") != text or "lastTransitionTime" not in before
    when = _timestamp(now) if changed or before is None else str(before["lastTransitionTime"])
    return {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": when,
    }


def _container_entry(result: ContainerResult) -> dict[str, Any] | None:
    if not result.target:
        return None
    entry: dict[str, Any] = {"containerName": result.container}
    for name, amounts in result.bounds().items():
        entry[name] = quantities(amounts)
    entry["model"] = result.model
    # Two decimals: confidence grows with every step of history, and a third decimal would
    # change (and rewrite) every status every other cycle.
    entry["confidence"] = round(result.confidence, 2)
    return entry


def _missing_message(results: Sequence[ContainerResult]) -> str:
    parts = [
        f"{r.container}: {resource}: {why}"
        for r in results
        for resource, why in sorted(r.missing.items())
    ]
    return "; ".join(parts)


def recommendation_status(
    results: Sequence[ContainerResult],
    previous: Mapping[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """A ResourceRecommendation status from fresh results, Prometheus having answered; the
    envelope (the result of POD) as `podRecommendation`."""
    entries = [e for e in (_container_entry(r) for r in results) if e is not None]
    envelope = next((e for e in entries if e["containerName"] == POD), None)
    entries = [e for e in entries if e is not envelope]
    conditions = list(previous.get("conditions") or [])
    missing = _missing_message(results)
    if entries or envelope is not None:
        provided = condition(
            conditions,
            PROVIDED,
            True,
            reason="Recommended",
            message=missing or "every resource",
            now=now,
        )
    else:
        provided = condition(
            conditions,
            PROVIDED,
            False,
            reason="NoRecommendation",
            message=missing or "no containers",
            now=now,
        )
    available = condition(
        conditions,
        PROMETHEUS_UNAVAILABLE,
        False,
        reason="HistoryRead",
        message="Prometheus answered",
        now=now,
    )
    status: dict[str, Any] = {
        "containerRecommendations": entries,
        "horizon": HORIZON,
        "lastUpdateTime": _timestamp(now),
        "conditions": [provided, available],
    }
    forecast = load_forecast(results, now)
    if forecast is not None:
        status["loadForecast"] = forecast
    if envelope is not None:
        del envelope["containerName"]
    status["podRecommendation"] = envelope  # null removes a stale one from the merge patch
    return status


def load_forecast(results: Sequence[ContainerResult], now: dt.datetime) -> dict[str, Any] | None:
    """The workload's expected cpu per hour from the hour holding `now`, for the updater to
    recreate pods at the quietest one: the envelope's profile where there is one (its usage is
    the containers' sum), else the containers' profiles summed; None unless each has one."""
    envelope = [r.cpu_profile for r in results if r.container == POD]
    profiles = envelope or [r.cpu_profile for r in results]
    if not profiles or any(not p or len(p) != len(profiles[0]) for p in profiles):
        return None
    hour = now.replace(minute=0, second=0, microsecond=0)
    return {
        "start": _timestamp(hour),
        "stepSeconds": LOAD_STEP_SECONDS,
        "cpu": [round(max(sum(step), 0.0), 3) for step in zip(*profiles, strict=True)],
    }


def unavailable_status(previous: Mapping[str, Any], error: str, now: dt.datetime) -> dict[str, Any]:
    """The previous status kept as it was, with PrometheusUnavailable set."""
    conditions = list(previous.get("conditions") or [])
    kept = [c for c in conditions if c.get("type") != PROMETHEUS_UNAVAILABLE]
    unavailable = condition(
        conditions, PROMETHEUS_UNAVAILABLE, True, reason="HistoryUnreadable", message=error, now=now
    )
    return {**previous, "conditions": [*kept, unavailable]}


VPA_RESOURCES: tuple[Resource, ...] = ("cpu", "memory")


def vpa_status(
    results: Sequence[ContainerResult], previous: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """The VPA's `status`: its recommendation in its own format (cpu and memory only; the VPA
    has no pod-level recommendation, so an envelope is left out)."""
    entries = []
    for result in results:
        if result.container == POD:
            continue
        entry: dict[str, Any] = {"containerName": result.container}
        for name, amounts in result.bounds().items():
            entry[name] = quantities({r: v for r, v in amounts.items() if r in VPA_RESOURCES})
        if entry["target"]:
            entries.append(entry)
    conditions = list(previous.get("conditions") or [])
    provided = condition(
        conditions,
        PROVIDED,
        bool(entries),
        reason="Recommended" if entries else "NoRecommendation",
        message="by the bridgescale recommender",
        now=now,
    )
    others = [c for c in conditions if c.get("type") != PROVIDED]
    return {
        "recommendation": {"containerRecommendations": entries},
        "conditions": [*others, provided],
    }


def nearly_equal(previous: Any, fresh: Any, ratio: float, *, key: str = "") -> bool:
    """Whether two statuses (or parts of them) differ by no more than `ratio` in any amount:
    quantities under a resource's name and plain numbers (a plain number may also move by
    `NUMBER_SLACK`, as a load of 0.001 cores against 0.002 is no change); every other value,
    and the shape, must be equal."""
    if isinstance(previous, Mapping) and isinstance(fresh, Mapping):
        return previous.keys() == fresh.keys() and all(
            nearly_equal(previous[k], fresh[k], ratio, key=k) for k in previous
        )
    if isinstance(previous, list) and isinstance(fresh, list):
        return len(previous) == len(fresh) and all(
            nearly_equal(p, f, ratio, key=key) for p, f in zip(previous, fresh, strict=True)
        )
    if previous == fresh:
        return True
    if _is_number(previous) and _is_number(fresh):
        gap = abs(float(previous) - float(fresh))
        return gap <= NUMBER_SLACK or gap <= ratio * max(abs(float(previous)), abs(float(fresh)))
    amounts = _amounts(previous, fresh, key)
    return amounts is not None and abs(amounts[0] - amounts[1]) <= ratio * max(amounts)


def _amounts(previous: Any, fresh: Any, key: str) -> tuple[float, float] | None:
    """Both values as amounts of the resource `key`, if they are quantities of one."""
    if key not in RESOURCES or not isinstance(previous, str) or not isinstance(fresh, str):
        return None
    try:
        return parse(previous, key), parse(fresh, key)
    except QuantityError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
