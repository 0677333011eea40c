"""Candidate forecasts of the next hour's peak, computed from rings of hourly peaks and means.

A ring holds one value for each of the last 168 hours (one week) per container, NaN where
there was no sample; slot `hour % 168` holds hour `hour`. Every candidate is a simple forecast
of the coming hour's peak, times a margin: a maximum or quantile over a recent window (level),
a quantile of the week's daily maxima (what the oracle knows in advance), the same hour of the
day on previous days, or the hour-of-day profile of mean usage (daily seasonality).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridgescale.models.base import FloatArray

WEEK_HOURS = 168


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


def recent_quantile(ring: FloatArray, next_hour: int, hours: int, q: float) -> FloatArray:
    """The `q` quantile (lower order statistic) of the last `hours` peaks, ignoring NaN."""
    window = _recent(ring, next_hour, hours)
    return _sorted_quantile(np.sort(np.where(np.isnan(window), np.inf, window), axis=1), q)


def daily_maxima(ring: FloatArray, next_hour: int) -> FloatArray:
    """The maxima of the seven 24-hour windows before `next_hour`, newest first (NaN if empty)."""
    week = _recent(ring, next_hour, WEEK_HOURS).reshape(ring.shape[0], 7, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty day is NaN, on purpose
        maxima: FloatArray = np.nanmax(week, axis=2)[:, ::-1]
    return maxima


def daily_max_quantile(ring: FloatArray, next_hour: int, q: float) -> FloatArray:
    """The `q` quantile (interpolated) of the week's daily maxima, plus their daily growth.

    The growth is the median of the day-to-day changes, counted when positive: a leak raises
    every day's maximum, one-off spikes do not move the median.
    """
    maxima = daily_maxima(ring, next_hour)
    level = _interpolated_quantile(maxima, q)
    growth = _interpolated_quantile(maxima[:, :-1] - maxima[:, 1:], 0.5)
    result: FloatArray = level + np.fmax(np.nan_to_num(growth), 0.0)
    return result


def _interpolated_quantile(values: FloatArray, q: float) -> FloatArray:
    """The `q` quantile of each row, ignoring NaN, interpolated between order statistics."""
    ordered = np.sort(np.where(np.isnan(values), np.inf, values), axis=1)
    counts = np.isfinite(ordered).sum(axis=1)
    position = q * np.fmax(counts - 1, 0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, np.fmax(counts - 1, 0))
    rows = np.arange(ordered.shape[0])
    low, high = ordered[rows, below], ordered[rows, above]
    with np.errstate(invalid="ignore"):
        value = low + (position - below) * (high - low)
    result: FloatArray = np.where(counts > 0, np.where(above == below, low, value), np.nan)
    return result


def hourly_profile(means: FloatArray, next_hour: int, ahead: int) -> FloatArray:
    """The expected mean usage of each of the next `ahead` hours (from `next_hour`), per row.

    It is the mean over the last six days of the same hour's mean usage, scaled by how the last
    six hours compare with the profile at those hours (the level moved since).
    """
    days = 24 * np.arange(1, 7)
    coming = next_hour + np.arange(ahead)
    profile = _nan_mean(means[:, (coming[:, None] - days[None, :]) % WEEK_HOURS])
    past = next_hour - np.arange(1, 7)
    then = _nan_mean(means[:, (past[:, None] - days[None, :]) % WEEK_HOURS])
    recent = means[:, past % WEEK_HOURS]
    usable = np.isfinite(then) & np.isfinite(recent)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(usable, recent, 0.0).sum(axis=1) / np.where(usable, then, 0.0).sum(axis=1)
    level = np.where(np.isfinite(level), np.clip(level, 0.5, 2.0), 1.0)
    result: FloatArray = profile * level[:, None]
    return result


def seasonal_profile(means: FloatArray, next_hour: int, ahead: int) -> FloatArray:
    """The largest of the next `ahead` hours of `hourly_profile`."""
    result: FloatArray = _nan_reduce(np.nanmax, hourly_profile(means, next_hour, ahead))
    return result


def _nan_mean(values: FloatArray) -> FloatArray:
    """Mean over the last axis ignoring NaN; NaN where all are NaN."""
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean: FloatArray = np.where(finite, values, 0.0).sum(axis=-1) / finite.sum(axis=-1)
    return mean


@dataclass(frozen=True)
class History:
    """What the candidates read: the rings of hourly peaks and means, and the hour to forecast.

    `day` (the last 24 peaks) and `day_sorted` are gathered once and shared by the candidates.
    """

    peaks: FloatArray
    means: FloatArray
    next_hour: int
    day: FloatArray
    day_sorted: FloatArray

    @staticmethod
    def of(peaks: FloatArray, means: FloatArray, next_hour: int) -> History:
        day = _recent(peaks, next_hour, 24)
        day_sorted = np.sort(np.where(np.isnan(day), np.inf, day), axis=1)
        return History(peaks, means, next_hour, day, day_sorted)


BASE_FORECASTS: dict[str, Callable[[History], FloatArray]] = {
    "max-3h": lambda h: _nan_reduce(np.nanmax, h.day[:, -3:]),
    "max-12h": lambda h: _nan_reduce(np.nanmax, h.day[:, -12:]),
    "max-24h": lambda h: _nan_reduce(np.nanmax, h.day),
    "max-7d": lambda h: _nan_reduce(np.nanmax, h.peaks),
    "p50-24h": lambda h: _sorted_quantile(h.day_sorted, 0.5),
    "p75-24h": lambda h: _sorted_quantile(h.day_sorted, 0.75),
    "p90-7d": lambda h: recent_quantile(h.peaks, h.next_hour, WEEK_HOURS, 0.9),
    "same-hour-1d": lambda h: _nan_reduce(np.nanmax, _same_hour(h.peaks, h.next_hour, 1)),
    "same-hour-6d": lambda h: _nan_reduce(np.nanmax, _same_hour(h.peaks, h.next_hour, 6)),
    "profile-4h": lambda h: seasonal_profile(h.means, h.next_hour, 4),
}
MARGINS = (1.0, 1.15, 1.3, 1.6)
CANDIDATE_NAMES = tuple(f"{name} x{margin}" for name in BASE_FORECASTS for margin in MARGINS)


def _sorted_quantile(ordered: FloatArray, q: float) -> FloatArray:
    counts = np.isfinite(ordered).sum(axis=1)
    index = np.clip(np.floor(q * (counts - 1)).astype(np.int64), 0, ordered.shape[1] - 1)
    value = ordered[np.arange(ordered.shape[0]), index]
    result: FloatArray = np.where(counts > 0, value, np.nan)
    return result


def forecast_all(history: History) -> FloatArray:
    """Every candidate's forecast, shape (containers, candidates); computed once per base."""
    columns: list[FloatArray] = []
    for forecast in BASE_FORECASTS.values():
        base = forecast(history)
        columns.extend(base * margin for margin in MARGINS)
    return np.stack(columns, axis=1)
