"""The recommender interface: usage samples in, targets and bounds per resource out.

Every recommender works on a *fleet*: a batch of containers whose state is a set of numpy arrays
with the container on the first axis. One cycle feeds the samples that arrived since the last
cycle (`observe`, cost O(new samples)) and asks for recommendations at an instant (`recommend`).
The per-container view (`bridgescale.models.container`) is a fleet of one.

Inputs are plain arrays: cpu as a rate (cores, mean over the sample interval), memory and GPU
memory (vram) as the peak bytes of the interval. Samples that are NaN, infinite or negative
(a counter reset turned into a rate) are counted and dropped, never raised on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FleetState = dict[str, npt.NDArray[Any]]

RESOURCES = ("cpu", "memory", "vram")
HOUR = 3600.0
DAY = 86400.0


class Reason(IntEnum):
    """Why a resource has no recommendation; `NONE` means it has one."""

    NONE = 0
    NO_SAMPLES = 1
    THIN_HISTORY = 2
    STALE = 3
    INVALID_SAMPLES = 4


REASON_TEXT = {
    Reason.NONE: "",
    Reason.NO_SAMPLES: "no usage samples",
    Reason.THIN_HISTORY: "thin history: too few samples or too short a span",
    Reason.STALE: "gap: no usage sample in the last 6 hours",
    Reason.INVALID_SAMPLES: "most samples invalid (NaN, infinite, or negative from counter resets)",
}


@dataclass(frozen=True)
class ResourcePolicy:
    """Bounds and margin for one resource; the margin is added before the bounds are applied."""

    minimum: float = 0.0
    maximum: float = math.inf
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not self.minimum >= 0:
            raise ValueError(f"minimum must be >= 0, got {self.minimum}")
        if not self.maximum >= self.minimum:
            raise ValueError(f"maximum ({self.maximum}) must be >= minimum ({self.minimum})")
        if not 0 <= self.margin < 10:
            raise ValueError(f"margin must be in [0, 10), got {self.margin}")


@dataclass(frozen=True)
class Policy:
    """Per-resource policy; resources not named get the default (no bounds, no margin)."""

    resources: Mapping[str, ResourcePolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.resources) - set(RESOURCES)
        if unknown:
            raise ValueError(f"resources: unknown {sorted(unknown)}, expected {RESOURCES}")

    def of(self, resource: str) -> ResourcePolicy:
        return self.resources.get(resource, ResourcePolicy())


@dataclass(frozen=True)
class SampleBatch:
    """New samples for some containers of a fleet, in time order within each container.

    `usage[resource]` holds one value per sample (NaN where that resource was not measured).
    `cpu_request` is the cpu request in force when the sample was taken (NaN if unknown); the
    VPA weighs cpu samples by it.
    """

    container: IntArray
    timestamp: FloatArray
    usage: Mapping[str, FloatArray]
    cpu_request: FloatArray | None = None

    def __post_init__(self) -> None:
        size = self.container.shape[0]
        if self.timestamp.shape != (size,):
            raise ValueError(f"timestamp: expected shape ({size},), got {self.timestamp.shape}")
        for resource, values in self.usage.items():
            if resource not in RESOURCES:
                raise ValueError(f"usage: unknown resource {resource!r}")
            if values.shape != (size,):
                raise ValueError(f"usage[{resource!r}]: expected shape ({size},)")

    @property
    def size(self) -> int:
        return int(self.container.shape[0])


@dataclass(frozen=True)
class OomEvents:
    """Out-of-memory kills: container, time, and the memory limit the container had."""

    container: IntArray
    timestamp: FloatArray
    memory_limit: FloatArray

    @staticmethod
    def none() -> OomEvents:
        return OomEvents(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class ResourceRecommendations:
    """Recommendations for one resource across a fleet; `reason != 0` means none."""

    target: FloatArray
    lower_bound: FloatArray
    upper_bound: FloatArray
    reason: IntArray

    @staticmethod
    def empty(count: int, reason: Reason) -> ResourceRecommendations:
        nan = np.full(count, np.nan)
        return ResourceRecommendations(nan, nan.copy(), nan.copy(), np.full(count, int(reason)))

    def with_reasons(self, reason: IntArray) -> ResourceRecommendations:
        """Blank the values where `reason` (or an earlier reason) says there is none."""
        merged = np.where(self.reason != 0, self.reason, reason)
        missing = merged != 0
        blank = [
            np.where(missing, np.nan, v) for v in (self.target, self.lower_bound, self.upper_bound)
        ]
        return ResourceRecommendations(blank[0], blank[1], blank[2], merged)

    def within(self, policy: ResourcePolicy) -> ResourceRecommendations:
        """Add the policy's margin and clamp to its bounds; bounds stay ordered."""

        def apply(values: FloatArray) -> FloatArray:
            scaled = values * (1.0 + policy.margin)
            return np.clip(scaled, policy.minimum, policy.maximum)

        target = apply(self.target)
        lower = np.minimum(apply(self.lower_bound), target)
        upper = np.maximum(apply(self.upper_bound), target)
        return ResourceRecommendations(target, lower, upper, self.reason)


FleetRecommendations = dict[str, ResourceRecommendations]


class Recommender(Protocol):
    """A recommender over a fleet of containers; see the module docstring."""

    @property
    def name(self) -> str:
        """The name the backtest and the ResourceRecommendation status use."""
        ...

    def new_state(self, count: int) -> FleetState:
        """State for `count` containers that have seen nothing yet."""
        ...

    def observe(self, state: FleetState, samples: SampleBatch, ooms: OomEvents) -> None:
        """Fold new samples and OOM kills into the state, in place."""
        ...

    def recommend(self, state: FleetState, now: float) -> FleetRecommendations:
        """Targets and bounds at `now` for each resource that has ever had a sample."""
        ...
