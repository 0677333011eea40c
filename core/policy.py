"""A workload's policy, read from its `bridgescale.dev/...` annotations.

Each annotation is read on its own: one that cannot be used is reported as a `PolicyProblem`
(which becomes a Kubernetes Event on the workload) and left out, and the rest still applies.

| annotation | example | meaning |
| --- | --- | --- |
| `bridgescale.dev/update-mode` | `InPlace` | `Off`, `Initial`, `InPlace`, `InPlaceOrRecreate` |
| `bridgescale.dev/min-allowed` | `cpu=100m,memory=256Mi` | floor per resource |
| `bridgescale.dev/max-allowed` | `cpu=4,memory=16Gi,gpu-memory=40Gi` | ceiling per resource |
| `bridgescale.dev/controlled-resources` | `cpu,memory` | resources bridgescale sizes |
| `bridgescale.dev/deferral-timeout` | `5m` | how long a Deferred resize may wait |
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bridgescale.quantity import RESOURCES, QuantityError, Resource, parse

PREFIX = "bridgescale.dev/"
UPDATE_MODE = PREFIX + "update-mode"
MIN_ALLOWED = PREFIX + "min-allowed"
MAX_ALLOWED = PREFIX + "max-allowed"
CONTROLLED_RESOURCES = PREFIX + "controlled-resources"
DEFERRAL_TIMEOUT = PREFIX + "deferral-timeout"
KNOWN = (UPDATE_MODE, MIN_ALLOWED, MAX_ALLOWED, CONTROLLED_RESOURCES, DEFERRAL_TIMEOUT)

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
MAX_DEFERRAL_TIMEOUT = dt.timedelta(days=7)


class UpdateMode(StrEnum):
    OFF = "Off"  # recommend only
    INITIAL = "Initial"  # size pods when they are created, never touch running ones
    IN_PLACE = "InPlace"  # resize running pods in place; never recreate
    IN_PLACE_OR_RECREATE = "InPlaceOrRecreate"  # in place, recreate when that cannot work


@dataclass(frozen=True)
class PolicyProblem:
    annotation: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"annotation {self.annotation}={self.value!r} ignored: {self.problem}"

    def unusable(self) -> str:
        """The problem where the updater holds the workload rather than ignore the annotation."""
        return f"annotation {self.annotation}={self.value!r} unusable: {self.problem}"


@dataclass(frozen=True)
class WorkloadPolicy:
    mode: UpdateMode = UpdateMode.IN_PLACE_OR_RECREATE
    min_allowed: Mapping[Resource, float] = field(default_factory=dict)
    max_allowed: Mapping[Resource, float] = field(default_factory=dict)
    controlled: frozenset[Resource] = frozenset(RESOURCES)
    deferral_timeout: dt.timedelta | None = None  # None: the updater's default

    def clamp(self, resource: Resource, value: float) -> float:
        """`value` kept within this policy's min and max for `resource`."""
        low = self.min_allowed.get(resource, 0.0)
        high = self.max_allowed.get(resource, float("inf"))
        return min(max(value, low), high)


def parse_resource_list(text: str) -> dict[Resource, float]:
    """`cpu=100m,memory=256Mi` into {resource: amount}; raises ValueError naming the part."""
    amounts: dict[Resource, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in RESOURCES:
            raise ValueError(
                f"{part!r} is not <resource>=<quantity> with resource one of {', '.join(RESOURCES)}"
            )
        resource: Resource = name  # checked just above
        if resource in amounts:
            raise ValueError(f"{resource} is given twice")
        try:
            amounts[resource] = parse(value.strip(), resource)
        except QuantityError as error:
            raise ValueError(f"{resource}: {error}") from error
    return amounts


def parse_duration(text: str) -> dt.timedelta:
    """A duration such as `90s`, `5m` or `1h30m`."""
    found = _DURATION.match(text.strip())
    if not text.strip() or not found:
        raise ValueError("expected a duration such as 90s, 5m or 1h30m")
    hours, minutes, seconds = (int(g) if g else 0 for g in found.groups())
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _parse_one(policy: WorkloadPolicy, annotation: str, value: str) -> WorkloadPolicy:
    if annotation == UPDATE_MODE:
        try:
            return replace(policy, mode=UpdateMode(value.strip()))
        except ValueError:
            modes = ", ".join(mode.value for mode in UpdateMode)
            raise ValueError(f"update mode must be one of {modes}") from None
    if annotation == MIN_ALLOWED:
        return replace(policy, min_allowed=parse_resource_list(value))
    if annotation == MAX_ALLOWED:
        return replace(policy, max_allowed=parse_resource_list(value))
    if annotation == CONTROLLED_RESOURCES:
        names = {n.strip() for n in value.split(",") if n.strip()}
        unknown = names - set(RESOURCES)
        if unknown or not names:
            raise ValueError(f"resources must be among {', '.join(RESOURCES)}")
        return replace(policy, controlled=frozenset(names))  # type: ignore[arg-type]
    timeout = parse_duration(value)
    if not dt.timedelta(0) < timeout <= MAX_DEFERRAL_TIMEOUT:
        raise ValueError("the deferral timeout must be more than 0 and at most 7 days")
    return replace(policy, deferral_timeout=timeout)


def _drop_inverted_bounds(policy: WorkloadPolicy, problems: list[PolicyProblem]) -> WorkloadPolicy:
    low, high = dict(policy.min_allowed), dict(policy.max_allowed)
    for resource in set(low) & set(high):
        if low[resource] > high[resource]:
            problems.append(
                PolicyProblem(
                    MAX_ALLOWED,
                    str(high[resource]),
                    f"{resource} maximum is below the minimum; neither bound is used",
                )
            )
            del low[resource], high[resource]
    return replace(policy, min_allowed=low, max_allowed=high)


def policy_from_annotations(
    annotations: Mapping[str, str] | None, base: WorkloadPolicy | None = None
) -> tuple[WorkloadPolicy, list[PolicyProblem]]:
    """The policy that `annotations` set over `base`, and the annotations that were ignored."""
    policy = base or WorkloadPolicy()
    problems: list[PolicyProblem] = []
    for annotation, value in sorted((annotations or {}).items()):
        if not annotation.startswith(PREFIX):
            continue
        if annotation not in KNOWN:
            problems.append(PolicyProblem(annotation, value, "unknown bridgescale annotation"))
            continue
        try:
            policy = _parse_one(policy, annotation, value)
        except ValueError as error:
            problems.append(PolicyProblem(annotation, value, str(error)))
    return _drop_inverted_bounds(policy, problems), problems
