"""Hand-checkable cases for the forecasts behind `bridgescale`: daily maxima, their growth,
the hour-of-day profile, and hourly means folded across batches."""

import numpy as np
import pytest

from bridgescale.models.base import HOUR, OomEvents, SampleBatch
from bridgescale.models.bridgescale import BridgescaleRecommender, cpu_load_forecast
from bridgescale.models.forecast import (
    WEEK_HOURS,
    daily_max_quantile,
    daily_maxima,
    seasonal_profile,
)
from bridgescale.models.vpa import VpaRecommender

NEXT_HOUR = 1000 * WEEK_HOURS  # a multiple of the week: slot 0 is the hour to forecast


def _ring(values_by_hour_back: np.ndarray) -> np.ndarray:
    """A one-container ring whose slot for `NEXT_HOUR - k` holds `values[k - 1]`."""
    ring = np.full((1, WEEK_HOURS), np.nan)
    hours_back = np.arange(1, WEEK_HOURS + 1)
    ring[0, (NEXT_HOUR - hours_back) % WEEK_HOURS] = values_by_hour_back
    return ring


def test_daily_maxima_are_newest_first_and_growth_is_added() -> None:
    # A leak: each 24-hour window's maximum is 1 higher than the one before it.
    days_back = (np.arange(WEEK_HOURS) // 24).astype(float)
    ring = _ring(100.0 - days_back)
    np.testing.assert_array_equal(daily_maxima(ring, NEXT_HOUR)[0], 100.0 - np.arange(7))
    # Median of maxima (97) plus the median daily growth (1).
    assert daily_max_quantile(ring, NEXT_HOUR, 0.5)[0] == 98.0


def test_one_off_spike_does_not_count_as_growth() -> None:
    values = np.full(WEEK_HOURS, 10.0)
    values[30] = 500.0  # one spike, two days back
    ring = _ring(values)
    assert daily_max_quantile(ring, NEXT_HOUR, 0.5)[0] == 10.0
    assert daily_max_quantile(ring, NEXT_HOUR, 1.0)[0] == 500.0


def test_profile_follows_the_hour_of_day_and_the_level() -> None:
    hour_of_day = (NEXT_HOUR - np.arange(1, WEEK_HOURS + 1)) % 24
    daily = 1.0 + hour_of_day / 24.0
    steady = seasonal_profile(_ring(daily), NEXT_HOUR, 4)[0]
    assert steady == 1.0 + 3 / 24.0  # the largest of the next four hours (0 to 3 o'clock)
    raised = daily.copy()
    raised[:6] *= 2.0  # the last six hours ran at twice the profile
    assert np.isclose(seasonal_profile(_ring(raised), NEXT_HOUR, 4)[0], 2 * steady)


def test_hourly_means_survive_batches_that_split_an_hour() -> None:
    recommender = BridgescaleRecommender()
    state = recommender.new_state(1)
    start = 1_700_006_400.0  # on the hour
    time = start + 300.0 * np.arange(24)
    cpu = np.arange(24, dtype=float)
    for part in (slice(0, 5), slice(5, 17), slice(17, 24)):
        batch = SampleBatch(np.zeros(time[part].size, np.int64), time[part], {"cpu": cpu[part]})
        recommender.observe(state, batch, OomEvents.none())
    slots = (np.floor(start / HOUR).astype(np.int64) + np.arange(2)) % WEEK_HOURS
    np.testing.assert_allclose(state["cpu_means"][0, slots], [cpu[:12].mean(), cpu[12:].mean()])


def test_the_cpu_load_forecast_finds_the_quiet_hours_of_a_daily_pattern() -> None:
    """A week of a load that is low from 02:00 to 05:00 each day: the forecast says so."""
    recommender = BridgescaleRecommender()
    state = recommender.new_state(1)
    hours = np.arange(24 * 7)
    timestamps = np.concatenate([h * HOUR + np.arange(0, HOUR, 300.0) for h in hours])
    hour_of_day = (timestamps // HOUR) % 24
    cores = np.where((hour_of_day >= 2) & (hour_of_day < 5), 0.2, 1.0)
    samples = SampleBatch(
        np.zeros(timestamps.size, np.int64),
        timestamps,
        {"cpu": cores, "memory": np.full(timestamps.size, 1e9)},
    )
    recommender.observe(state, samples, OomEvents.none())
    now = 24 * 7 * HOUR + 1800.0  # half past midnight on day 8
    forecast = cpu_load_forecast(state, now)
    assert forecast is not None and forecast.shape == (1, 24)
    assert forecast[0, 2:5] == pytest.approx(0.2)
    assert np.delete(forecast[0], [2, 3, 4]) == pytest.approx(1.0)
    assert cpu_load_forecast(VpaRecommender().new_state(1), now) is None
