"""`bridgescale`: forecast the next hour's peak with many simple candidates, keep the one that
has cost least lately, and change the limit only when it pays.

Per container and resource the state is a ring of hourly peaks (one week; for cpu also a ring
of hourly means), the last forecast of every candidate (`forecast.CANDIDATE_NAMES`), each
candidate's decayed cost, the candidate in use, and the limit in force. A cycle:

1. `observe` folds samples into the rings and charges each candidate for the samples of the
   hour it forecast that went above its forecast (cpu: the fraction of samples, memory and GPU
   memory: whether any did, since one is an OOM kill).
2. `recommend` decays the costs, charges each candidate for its size (forecast over the usage
   level, or over a floor for small containers) and for moving, picks the cheapest with a
   penalty for switching (Autopilot's recommender does the same with its models), and turns
   the forecast into a limit: up at once, down only by a clear margin, in bounded steps,
   within a daily change budget. Memory and GPU memory use the floors alone: a quantile of the
   week's daily maxima (plus their growth) and the peak of the last hours, plus headroom.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bridgescale.models import bookkeeping
from bridgescale.models.base import (
    DAY,
    HOUR,
    RESOURCES,
    FleetRecommendations,
    FleetState,
    FloatArray,
    IntArray,
    OomEvents,
    ResourceRecommendations,
    SampleBatch,
)
from bridgescale.models.forecast import (
    CANDIDATE_NAMES,
    WEEK_HOURS,
    History,
    daily_max_quantile,
    forecast_all,
    hourly_profile,
    recent_quantile,
)

CANDIDATES = len(CANDIDATE_NAMES)
MIN_SAMPLES = 12
CHANGE_MEMORY = 8  # times of the last changes kept, for the daily change budget
MEAN_RESOURCES = ("cpu",)  # resources with a ring of hourly means (the seasonal profile)


@dataclass(frozen=True)
class Tuning:
    """How one resource trades size against overruns and changes."""

    overrun_cost: float
    change_cost: float = 0.5
    switch_cost: float = 0.5
    cost_half_life_hours: float = 48.0
    down_threshold: float = 0.15  # lower the limit only when the forecast is this far under it
    down_step: float = 0.3  # at most this fraction down per change
    hold_hours: int = 6  # hours between two decreases
    peak_guard_hours: int = 0  # never under the peak of this many recent hours (x headroom)
    peak_headroom: float = 1.0
    daily_max_quantile: float = 0.0  # never under this quantile of the week's daily maxima (0: off)
    daily_max_margin: float = 1.0  # times that quantile
    use_chooser: bool = True  # False: the limit is the floors alone (recent peak, daily maxima)
    size_floor: float = 0.0  # size is charged relative to max(usage level, this): small is cheap
    absolute_headroom: float = 0.0  # added to every limit (cores or bytes): cheap on small pods
    up_threshold: float = 0.0  # raise the limit only when the forecast is this far over it
    up_headroom: float = 1.0  # going up, go this much further, to save the next change
    daily_changes: int = 5  # at most this many changes in any 24 h...
    budget_blocks_increases: bool = True  # ...counting increases too (not for memory: OOM)


# Memory: the next day's maximum, forecast from the week's daily maxima (docs/models.md says
# why the candidates of the hourly chooser lost to it); up at once, down after 3 quiet hours.
MEMORY_TUNING = Tuning(
    overrun_cost=100.0,
    use_chooser=False,
    peak_guard_hours=3,
    daily_max_quantile=0.67,
    daily_max_margin=1.02,
    absolute_headroom=4e8,  # ~400 MB: cheap on small pods, where most OOM-days were
    up_headroom=1.05,
    daily_changes=4,  # decreases only; increases are never held back
    budget_blocks_increases=False,
)
# cpu: the chooser, with size charged per core above 4 cores' worth (small pods cover bursts)
# and a limit that follows the daily profile within six changes a day.
DEFAULT_TUNING = {
    "cpu": Tuning(
        overrun_cost=10.0,
        cost_half_life_hours=168.0,
        size_floor=4.0,
        absolute_headroom=0.1,
        down_threshold=0.1,
        hold_hours=0,
        daily_changes=6,
    ),
    "memory": MEMORY_TUNING,
    "vram": MEMORY_TUNING,
}

# Memory of a pod envelope (the summed usage of a router and a sidecar): a coincidence of the
# containers' peaks is rare, so the sum's next peak is seen late, and by more bytes the larger
# the pod. The envelope keeps the same rule with a relative margin of 8 % over the daily
# maxima instead of 2 %: on the synthetic shared-budget fleet (seeds 1 to 3; seed 4 held out)
# its OOM-days are then no more than per-container sizing's (docs/backtest-results.md).
# TODO(real traces of shared-budget pods, or pods of more than two containers): check the margin
# on them; it was chosen on synthetic router + sidecar pairs only.
ENVELOPE_TUNING = {**DEFAULT_TUNING, "memory": replace(MEMORY_TUNING, daily_max_margin=1.08)}


@dataclass(frozen=True)
class BridgescaleRecommender:
    name: str = "bridgescale"
    tuning: dict[str, Tuning] = field(default_factory=lambda: dict(DEFAULT_TUNING))

    def new_state(self, count: int) -> FleetState:
        state = bookkeeping.add_bookkeeping({}, count)
        for resource in RESOURCES:
            state[f"{resource}_ring"] = np.full((count, WEEK_HOURS), np.nan)
            state[f"{resource}_hour"] = np.full(count, -1, np.int64)
            if resource in MEAN_RESOURCES:
                state[f"{resource}_means"] = np.full((count, WEEK_HOURS), np.nan)
                state[f"{resource}_hour_samples"] = np.zeros(count, np.int64)
            state[f"{resource}_forecast"] = np.full((count, CANDIDATES), np.nan)
            state[f"{resource}_forecast_time"] = np.full(count, np.nan)
            state[f"{resource}_cost"] = np.zeros((count, CANDIDATES))
            state[f"{resource}_choice"] = np.full(count, -1, np.int64)
            state[f"{resource}_limit"] = np.full(count, np.nan)
            state[f"{resource}_last_decrease"] = np.full(count, -np.inf)
            state[f"{resource}_changes"] = np.full((count, CHANGE_MEMORY), -np.inf)
        return state

    def observe(self, state: FleetState, samples: SampleBatch, ooms: OomEvents) -> None:
        del ooms  # an OOM kill shows as a sample above the limit, which costs its candidates
        for resource, mask in bookkeeping.valid_samples(state, samples).items():
            container = samples.container[mask]
            time = samples.timestamp[mask]
            values = samples.usage[resource][mask]
            self._charge_overruns(state, resource, container, time, values)
            _fold_hourly_peaks(state, resource, container, time, values)

    def _charge_overruns(
        self,
        state: FleetState,
        resource: str,
        container: IntArray,
        time: FloatArray,
        values: FloatArray,
    ) -> None:
        start = state[f"{resource}_forecast_time"][container]
        judged = (time >= start) & (time < start + HOUR)
        if not judged.any():
            return
        order = np.argsort(container[judged], kind="stable")
        container, values = container[judged][order], values[judged][order]
        starts = np.flatnonzero(np.diff(container, prepend=-1))
        owners = container[starts]
        over = values[:, None] > state[f"{resource}_forecast"][container]
        charge = np.zeros(state[f"{resource}_cost"].shape)
        if resource == "cpu":
            seen = np.diff(np.append(starts, container.size))
            overs = np.add.reduceat(over, starts, axis=0, dtype=np.int32)
            charge[owners] = overs / seen[:, None]
        else:
            charge[owners] = np.logical_or.reduceat(over, starts, axis=0)
        state[f"{resource}_cost"] += self.tuning[resource].overrun_cost * charge

    def recommend(self, state: FleetState, now: float) -> FleetRecommendations:
        result: FleetRecommendations = {}
        next_hour = int(np.floor(now / HOUR))
        for resource in bookkeeping.measured_resources(state):
            result[resource] = self._recommend_resource(state, resource, now, next_hour)
        return result

    def _chosen_forecast(
        self, state: FleetState, resource: str, ring: FloatArray, now: float, next_hour: int
    ) -> FloatArray:
        """Charge every candidate for size and moving, and return the cheapest one's forecast."""
        tuning = self.tuning[resource]
        means = (
            _fresh_ring(state, f"{resource}_means", resource, next_hour)
            if f"{resource}_means" in state
            else np.full(ring.shape, np.nan)
        )
        forecasts = forecast_all(History.of(ring, means, next_hour))
        level = np.fmax(_level(ring), tuning.size_floor)
        cost = state[f"{resource}_cost"]
        cost *= 0.5 ** (1.0 / tuning.cost_half_life_hours)
        previous = state[f"{resource}_forecast"]
        with np.errstate(invalid="ignore", divide="ignore"):
            size = forecasts / level[:, None]
            moved = np.abs(forecasts - previous) / level[:, None]
        cost += np.nan_to_num(size, nan=0.0) + tuning.change_cost * np.nan_to_num(moved, nan=0.0)
        state[f"{resource}_forecast"] = forecasts
        state[f"{resource}_forecast_time"] = np.full(level.shape, now)
        chosen = _choose(state, resource, forecasts, tuning)
        result: FloatArray = forecasts[np.arange(chosen.size), chosen]
        return result

    def _recommend_resource(
        self, state: FleetState, resource: str, now: float, next_hour: int
    ) -> ResourceRecommendations:
        tuning = self.tuning[resource]
        ring = _fresh_ring(state, f"{resource}_ring", resource, next_hour)
        proposal = (
            self._chosen_forecast(state, resource, ring, now, next_hour)
            if tuning.use_chooser
            else np.full(ring.shape[0], np.nan)
        )
        limit = _next_limit(state, resource, ring, next_hour, proposal=proposal, tuning=tuning)
        lower = np.fmin(recent_quantile(ring, next_hour, 24, 0.5), limit)
        upper = np.fmax(np.nanmax(np.where(np.isnan(ring), -np.inf, ring), axis=1) * 1.25, limit)
        reason = bookkeeping.reasons(state, resource, now, MIN_SAMPLES, HOUR)
        reason[~np.isfinite(limit) & (reason == 0)] = 2
        return ResourceRecommendations(
            limit, np.fmax(lower, 0.0), upper, np.zeros_like(reason)
        ).with_reasons(reason)


def _fold_hourly_peaks(
    state: FleetState, resource: str, container: IntArray, time: FloatArray, values: FloatArray
) -> None:
    """Put each (container, hour)'s peak in its ring slot, blanking hours skipped by a gap."""
    if container.size == 0:
        return
    ring = state[f"{resource}_ring"]
    means = state.get(f"{resource}_means")
    rings = [ring] if means is None else [ring, means]
    last_hour = state[f"{resource}_hour"]
    hour = np.floor(time / HOUR).astype(np.int64)
    previous = last_hour[container]
    for index in np.unique(container[(previous >= 0) & (hour > previous + 1)]):
        newest = int(hour[container == index].max())
        for blanked in rings:
            _blank(blanked, int(index), int(last_hour[index]), newest)
    slots = hour % WEEK_HOURS
    fresh = hour > last_hour[container]
    ring[container[fresh], slots[fresh]] = np.nan  # a new hour replaces last week's value
    np.fmax.at(ring, (container, slots), values)
    if means is not None:
        _fold_hourly_means(state, resource, container, hour, values)
    np.maximum.at(last_hour, container, hour)


def _fold_hourly_means(
    state: FleetState, resource: str, container: IntArray, hour: IntArray, values: FloatArray
) -> None:
    """Update the mean of each (container, hour) with its new samples; late samples are left
    out (the hour's mean is final once a later hour has begun)."""
    means = state[f"{resource}_means"]
    counted = state[f"{resource}_hour_samples"]
    last_hour = state[f"{resource}_hour"]
    current = hour >= last_hour[container]
    keys, group = np.unique((container[current] << 31) | hour[current], return_inverse=True)
    owner, owner_hour = keys >> 31, keys & ((1 << 31) - 1)
    total = np.bincount(group, weights=values[current])
    seen = np.bincount(group)
    continuing = owner_hour == last_hour[owner]
    before = np.where(continuing, counted[owner], 0)
    slots = owner_hour % WEEK_HOURS
    old_mean = np.where(continuing, np.nan_to_num(means[owner, slots]), 0.0)
    means[owner, slots] = (old_mean * before + total) / (before + seen)
    counted[owner] = before + seen  # groups are in hour order: the newest hour's count stays


def _blank(ring: FloatArray, index: int, last_hour: int, newest: int) -> None:
    if last_hour < 0:
        return
    hours = np.arange(last_hour + 1, min(newest, last_hour + 1 + WEEK_HOURS))
    ring[index, hours % WEEK_HOURS] = np.nan


def _fresh_ring(state: FleetState, key: str, resource: str, next_hour: int) -> FloatArray:
    """The ring `key` without slots older than a week or than a gap up to `next_hour`."""
    ring = state[key].copy()
    silent = next_hour - 1 - state[f"{resource}_hour"]
    for index in np.nonzero(silent > 0)[0]:
        _blank(ring, int(index), int(state[f"{resource}_hour"][index]), next_hour)
    result: FloatArray = ring
    return result


def _level(ring: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(ring)
        total = np.where(finite, ring, 0.0).sum(axis=1)
        level: FloatArray = total / finite.sum(axis=1)
    return np.where(level > 0, level, np.nan)


def _choose(state: FleetState, resource: str, forecasts: FloatArray, tuning: Tuning) -> IntArray:
    """The cheapest candidate, with a penalty for leaving the current one."""
    cost = np.where(np.isfinite(forecasts), state[f"{resource}_cost"], np.inf)
    current = state[f"{resource}_choice"]
    has_current = current >= 0
    penalty = np.full(cost.shape, tuning.switch_cost)
    penalty[np.nonzero(has_current)[0], current[has_current]] = 0.0
    chosen: IntArray = np.argmin(cost + penalty, axis=1)
    state[f"{resource}_choice"] = chosen
    return chosen


def _next_limit(
    state: FleetState,
    resource: str,
    ring: FloatArray,
    next_hour: int,
    *,
    proposal: FloatArray,
    tuning: Tuning,
) -> FloatArray:
    """Up at once; down only past the threshold, in steps, after a hold, above recent peaks."""
    limit = state[f"{resource}_limit"].copy()
    floor = np.zeros(limit.shape)
    if tuning.peak_guard_hours:
        slots = next_hour - tuning.peak_guard_hours + np.arange(tuning.peak_guard_hours)
        recent = ring[:, slots % WEEK_HOURS]
        floor = np.nanmax(np.where(np.isnan(recent), 0.0, recent), axis=1) * tuning.peak_headroom
    if tuning.daily_max_quantile:
        daily = daily_max_quantile(ring, next_hour, tuning.daily_max_quantile)
        floor = np.fmax(floor, daily * tuning.daily_max_margin)
    if not tuning.use_chooser:
        proposal = np.full(limit.shape, np.nan)
    wanted = np.fmax(proposal, floor) + tuning.absolute_headroom
    now = next_hour * HOUR
    changes = state[f"{resource}_changes"]
    budget = min(tuning.daily_changes, CHANGE_MEMORY)
    within_budget = np.sort(changes, axis=1)[:, -budget] <= now - DAY
    unset = np.isnan(limit)
    up = wanted > limit * (1 + tuning.up_threshold)
    if tuning.budget_blocks_increases:
        up &= within_budget
    held = now - state[f"{resource}_last_decrease"] >= tuning.hold_hours * HOUR
    down = (wanted < limit * (1 - tuning.down_threshold)) & held & within_budget
    limit[unset] = wanted[unset]
    limit[up] = wanted[up] * tuning.up_headroom
    limit[down] = np.fmax(wanted[down], limit[down] * (1 - tuning.down_step))
    state[f"{resource}_last_decrease"][down] = now
    changed = up | down
    oldest = np.argmin(changes, axis=1)
    changes[np.nonzero(changed)[0], oldest[changed]] = now
    state[f"{resource}_limit"] = limit
    result: FloatArray = limit
    return result


def cpu_load_forecast(state: FleetState, now: float, hours: int = 24) -> FloatArray | None:
    """Expected mean cores per container for each of `hours` hours, the first being the hour
    that holds `now`: the hour-of-day profile the cpu candidates use (NaN where the history is
    too short). None for a state without hourly cpu means (another model's)."""
    if "cpu_means" not in state:
        return None
    next_hour = int(np.floor(now / HOUR))
    means = _fresh_ring(state, "cpu_means", "cpu", next_hour)
    return hourly_profile(means, next_hour, hours)
