"""A ResourceRecommendation's status as plain data: target and bounds per container."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridgescale.quantity import POD, RESOURCES, Resource
from bridgescale.updater.pods import read_amounts
from bridgescale.updater.timing import LoadForecast

logger = logging.getLogger(__name__)


class RecommendationProblem(ValueError):
    """A recommendation the updater cannot use; the message names the field."""


@dataclass(frozen=True)
class ContainerRecommendation:
    container: str
    target: Mapping[Resource, float]
    lower_bound: Mapping[Resource, float] = field(default_factory=dict)
    upper_bound: Mapping[Resource, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    containers: Mapping[str, ContainerRecommendation]  # the envelope's under POD
    forecast: LoadForecast | None = None  # expected load ahead, to recreate at a quiet moment


def _amounts(raw: Mapping[str, Any] | None, where: str) -> dict[Resource, float]:
    return read_amounts(raw, RESOURCES, where, RecommendationProblem)


def recommendation_from_json(raw: Mapping[str, Any]) -> Recommendation:
    """Read a ResourceRecommendation object; raises RecommendationProblem naming the field."""
    metadata, spec = raw["metadata"], raw.get("spec") or {}
    target = spec.get("targetRef") or {}
    containers = {}
    status = raw.get("status") or {}
    for index, item in enumerate(status.get("containerRecommendations") or []):
        where = f"status.containerRecommendations[{index}]"
        name = item.get("containerName")
        if not name:
            raise RecommendationProblem(f"{where}.containerName is missing")
        containers[str(name)] = ContainerRecommendation(
            container=str(name),
            target=_amounts(item.get("target"), f"{where}.target"),
            lower_bound=_amounts(item.get("lowerBound"), f"{where}.lowerBound"),
            upper_bound=_amounts(item.get("upperBound"), f"{where}.upperBound"),
        )
    envelope = status.get("podRecommendation")
    if envelope:
        where = "status.podRecommendation"
        containers[POD] = ContainerRecommendation(
            container=POD,
            target=_amounts(envelope.get("target"), f"{where}.target"),
            lower_bound=_amounts(envelope.get("lowerBound"), f"{where}.lowerBound"),
            upper_bound=_amounts(envelope.get("upperBound"), f"{where}.upperBound"),
        )
    return Recommendation(
        namespace=str(metadata["namespace"]),
        name=str(metadata["name"]),
        target_kind=str(target.get("kind", "")),
        target_name=str(target.get("name", "")),
        containers=containers,
        forecast=_forecast(
            status.get("loadForecast"), f"{metadata['namespace']}/{metadata['name']}"
        ),
    )


def _forecast(raw: Any, where: str) -> LoadForecast | None:
    """`status.loadForecast`: {start, stepSeconds, cpu: [cores per step]}; a malformed one is
    left out (recreates then go at once), with a warning."""
    if not raw:
        return None
    try:
        start = dt.datetime.fromisoformat(str(raw["start"]).replace("Z", "+00:00"))
        step = dt.timedelta(seconds=float(raw["stepSeconds"]))
        values = tuple(float(v) for v in raw["cpu"])
        if start.tzinfo is None or step.total_seconds() <= 0 or not values:
            raise ValueError("needs a zoned start, stepSeconds > 0 and values")
        if any(math.isnan(v) or v < 0 for v in values):
            raise ValueError("values must be numbers >= 0")
    except (KeyError, TypeError, ValueError) as error:
        logger.warning("%s: status.loadForecast ignored: %s", where, error)
        return None
    return LoadForecast(start, step, values)
