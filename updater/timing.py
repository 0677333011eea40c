"""When a planned recreate goes (pure): at the quietest forecast moment before its deadline.

Claim swaps and GPU-health migrations both restart a bridge, which drops its sessions, so both
go through one rule: an urgent plan goes at once; otherwise the pod is recreated while the
forecast load is lowest in the window from now to the deadline (less the time a recreate
takes), and at the latest at that edge. Without a forecast there is no quieter moment to wait
for, and the plan goes at once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_LOAD = 0.01  # cores: a rise from an idle hour is a burst only above this


@dataclass(frozen=True)
class LoadForecast:
    """Expected load per step from `start` (a workload's cpu, in cores, summed over its
    containers), as the recommender publishes it in `status.loadForecast`."""

    start: dt.datetime
    step: dt.timedelta
    values: tuple[float, ...]

    def slots(self) -> Sequence[tuple[dt.datetime, dt.datetime, float]]:
        return [
            (self.start + i * self.step, self.start + (i + 1) * self.step, value)
            for i, value in enumerate(self.values)
            if math.isfinite(value)
        ]


@dataclass(frozen=True)
class PlannedRecreate:
    """A recreate the updater intends: why, and by when at the latest."""

    reason: str  # a RecreateReason value
    message: str
    deadline: dt.datetime | None  # None: no deadline (then `window` after it was first seen)
    urgent: bool = False


@dataclass(frozen=True)
class Moment:
    go: bool
    at: dt.datetime  # the chosen moment
    latest: dt.datetime  # the edge of the window


def quiet_moment(
    now: dt.datetime, latest: dt.datetime, forecast: LoadForecast | None
) -> dt.datetime:
    """The start of the quietest forecast step that overlaps [now, latest] (the earliest of
    equally quiet ones); now when nothing is forecast for the window."""
    candidates = [
        (value, max(start, now))
        for start, end, value in (forecast.slots() if forecast else [])
        if end > now and start <= latest
    ]
    if not candidates:
        return now
    return min(candidates)[1]


def when_to_recreate(
    plan: PlannedRecreate,
    now: dt.datetime,
    first_seen: dt.datetime,
    forecast: LoadForecast | None,
    *,
    window: dt.timedelta,
    lead: dt.timedelta,
) -> Moment:
    """Whether to recreate now. The latest moment is the deadline less `lead` (what a recreate
    takes), or `window` after the plan was first seen when it has no deadline."""
    latest = (plan.deadline if plan.deadline is not None else first_seen + window) - lead
    if plan.urgent or now >= latest:
        return Moment(True, now, latest)
    at = quiet_moment(now, latest, forecast)
    return Moment(now >= at, at, latest)


class FirstSeen:
    """When each condition (a key) was first seen in an unbroken run of passes: a condition
    missing from one pass starts again. Kept in memory: a restart starts the runs again, which
    only delays what waits on them."""

    def __init__(self) -> None:
        self._since: dict[str, dt.datetime] = {}
        self._seen: set[str] = set()

    def begin_pass(self) -> None:
        self._seen = set()

    def since(self, key: str, now: dt.datetime) -> dt.datetime:
        self._seen.add(key)
        return self._since.setdefault(key, now)

    def end_pass(self) -> None:
        self._since = {k: v for k, v in self._since.items() if k in self._seen}


def sustained(first_seen: FirstSeen, key: str, now: dt.datetime, duration: dt.timedelta) -> bool:
    """The condition `key`, seen this pass, has held for `duration` (a shrink after sustained
    low use)."""
    return now - first_seen.since(key, now) >= duration


def burst_ahead(
    forecast: LoadForecast | None, now: dt.datetime, lookahead: dt.timedelta, ratio: float
) -> bool:
    """Whether the load forecast rises, within `lookahead`, above `ratio` times the load of the
    step that holds `now` (a burst a memory downscale should not run into)."""
    slots = forecast.slots() if forecast else []
    current = [value for start, end, value in slots if start <= now < end]
    later = [value for start, _, value in slots if now < start <= now + lookahead]
    if not current or not later:
        return False
    return max(later) > ratio * max(current[0], MIN_LOAD)
