"""A recommendation's `status.loadForecast` read for the updater's timing; a malformed one is
left out (recreates then go at once) rather than making the recommendation unusable."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bridgescale.updater.recommendations import recommendation_from_json


def _raw(forecast: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "deployment-pc"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "pc"}},
        "status": {"loadForecast": forecast, "containerRecommendations": []},
    }


def test_a_forecast_is_read_into_steps() -> None:
    raw = {"start": "2026-12-03T18:00:00Z", "stepSeconds": 3600, "cpu": [2, 0.5, 1]}
    forecast = recommendation_from_json(_raw(raw)).forecast
    assert forecast is not None
    assert forecast.start == dt.datetime(2026, 12, 3, 18, tzinfo=dt.UTC)
    assert forecast.values == (2.0, 0.5, 1.0)
    assert forecast.slots()[1][0] == dt.datetime(2026, 12, 3, 19, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "raw",
    [
        {"start": "yesterday", "stepSeconds": 3600, "cpu": [1]},
        {"start": "2026-12-03T18:00:00", "stepSeconds": 3600, "cpu": [1]},  # no zone
        {"start": "2026-12-03T18:00:00Z", "stepSeconds": 0, "cpu": [1]},
        {"start": "2026-12-03T18:00:00Z", "stepSeconds": 60, "cpu": ["NaN"]},
        {"start": "2026-12-03T18:00:00Z", "stepSeconds": 60},
    ],
)
def test_a_malformed_forecast_is_left_out(raw: dict[str, Any]) -> None:
    recommendation = recommendation_from_json(_raw(raw))
    assert recommendation.forecast is None
    assert recommendation.target_name == "pc"
