"""Candidate forecasts of the next hour's peak, computed from a ring of hourly peaks.

The ring holds the peak of each of the last 168 hours (one week) per container, NaN where
there was no sample; slot `hour % 168` holds hour `hour`. Every candidate is a simple forecast
of the coming hour's peak: a maximum or quantile over a recent window (level), or the same
hour of the day on previous days (daily seasonality), each times a margin.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from bridgescale.models.base import FloatArray

WEEK_HOURS = 168
Forecaster = Callable[[FloatArray], FloatArray]


def _recent(ring: FloatArray, next_hour: int, hours: int) -> FloatArray:
    """The last `hours` slots before `next_hour`, newest last."""
    slots = (next_hour - hours + np.arange(hours)) % WEEK_HOURS
    recent: FloatArray = ring[:, slots]
    return recent


def _same_hour(ring: FloatArray, next_hour: int, days: int) -> FloatArray:
    """The hour before, at and after `next_hour` on each of the last `days` days."""
    offsets = np.array([24 * d + s for d in range(1, days + 1) for s in (-1, 0, 1)])
    same: FloatArray = ring[:, (next_hour - offsets) % WEEK_HOURS]
    return same


def _nan_reduce(function: Callable[..., FloatArray], values: FloatArray) -> FloatArray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, on purpose
        return function(values, axis=1)


def _window_max(hours: int) -> Callable[[FloatArray, int], FloatArray]:
    return lambda ring, hour: _nan_reduce(np.nanmax, _recent(ring, hour, hours))


def _window_quantile(hours: int, q: float) -> Callable[[FloatArray, int], FloatArray]:
    return lambda ring, hour: recent_quantile(ring, hour, hours, q)


def recent_quantile(ring: FloatArray, next_hour: int, hours: int, q: float) -> FloatArray:
    """The `q` quantile (lower order statistic) of the last `hours` peaks, ignoring NaN."""
    window = _recent(ring, next_hour, hours)
    return _sorted_quantile(np.sort(np.where(np.isnan(window), np.inf, window), axis=1), q)


def _seasonal_max(days: int) -> Callable[[FloatArray, int], FloatArray]:
    return lambda ring, hour: _nan_reduce(np.nanmax, _same_hour(ring, hour, days))


BASE_FORECASTS: dict[str, Callable[[FloatArray, int], FloatArray]] = {
    "max-3h": _window_max(3),
    "max-12h": _window_max(12),
    "max-24h": _window_max(24),
    "max-7d": _window_max(WEEK_HOURS),
    "p50-24h": _window_quantile(24, 0.5),
    "p75-24h": _window_quantile(24, 0.75),
    "p90-7d": _window_quantile(WEEK_HOURS, 0.9),
    "same-hour-1d": _seasonal_max(1),
    "same-hour-6d": _seasonal_max(6),
}
MARGINS = (1.0, 1.15, 1.3, 1.6)


def _sorted_quantile(ordered: FloatArray, q: float) -> FloatArray:
    counts = np.isfinite(ordered).sum(axis=1)
    index = np.clip(np.floor(q * (counts - 1)).astype(np.int64), 0, ordered.shape[1] - 1)
    value = ordered[np.arange(ordered.shape[0]), index]
    result: FloatArray = np.where(counts > 0, value, np.nan)
    return result


# The same forecasts as BASE_FORECASTS, from the last day's slots gathered and sorted once.
FAST: dict[Callable[[FloatArray, int], FloatArray], Callable[[dict[str, FloatArray]], FloatArray]]
FAST = {
    BASE_FORECASTS["max-3h"]: lambda s: _nan_reduce(np.nanmax, s["day"][:, -3:]),
    BASE_FORECASTS["max-12h"]: lambda s: _nan_reduce(np.nanmax, s["day"][:, -12:]),
    BASE_FORECASTS["max-24h"]: lambda s: _nan_reduce(np.nanmax, s["day"]),
    BASE_FORECASTS["max-7d"]: lambda s: _nan_reduce(np.nanmax, s["ring"]),
    BASE_FORECASTS["p50-24h"]: lambda s: _sorted_quantile(s["day_sorted"], 0.5),
    BASE_FORECASTS["p75-24h"]: lambda s: _sorted_quantile(s["day_sorted"], 0.75),
}
CANDIDATE_NAMES = tuple(f"{name} x{margin}" for name in BASE_FORECASTS for margin in MARGINS)


def forecast_all(ring: FloatArray, next_hour: int) -> FloatArray:
    """Every candidate's forecast, shape (containers, candidates); computed once per base."""
    columns: list[FloatArray] = []
    day = _recent(ring, next_hour, 24)
    day_sorted = np.sort(np.where(np.isnan(day), np.inf, day), axis=1)
    shared = {"day": day, "day_sorted": day_sorted, "ring": ring}
    for forecast in BASE_FORECASTS.values():
        base = forecast(ring, next_hour) if forecast not in FAST else FAST[forecast](shared)
        columns.extend(base * margin for margin in MARGINS)
    return np.stack(columns, axis=1)
