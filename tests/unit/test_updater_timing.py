"""Planned recreates: at the quietest forecast moment before the deadline, at once when urgent
or without a forecast; shrinks only after sustained low use (fake time throughout)."""

from __future__ import annotations

import datetime as dt

from bridgescale.updater.timing import (
    FirstSeen,
    LoadForecast,
    PlannedRecreate,
    burst_ahead,
    quiet_moment,
    sustained,
    when_to_recreate,
)

T0 = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
# Hourly cpu from 18:00: the evening peak falls to a trough at 02:00.
EVENING = LoadForecast(T0, HOUR, (6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 1.2, 0.5, 0.9, 2.0, 4.0))


def _when(
    plan: PlannedRecreate, now: dt.datetime, forecast: LoadForecast | None = EVENING
) -> tuple[bool, dt.datetime]:
    moment = when_to_recreate(
        plan, now, T0, forecast, window=dt.timedelta(hours=6), lead=dt.timedelta(minutes=2)
    )
    return moment.go, moment.at


def test_the_quietest_step_before_the_deadline_is_chosen() -> None:
    assert quiet_moment(T0, T0 + 12 * HOUR, EVENING) == T0 + 8 * HOUR
    assert quiet_moment(T0, T0 + 7 * HOUR, EVENING) == T0 + 6 * HOUR  # 02:00 is too late
    assert quiet_moment(T0 + 30 * dt.timedelta(minutes=1), T0 + HOUR, EVENING) == T0 + HOUR


def test_a_plan_waits_for_its_quiet_moment_then_goes() -> None:
    plan = PlannedRecreate("ClaimSwap", "grow", deadline=T0 + 10 * HOUR)
    assert _when(plan, T0) == (False, T0 + 8 * HOUR)
    assert _when(plan, T0 + 5 * HOUR) == (False, T0 + 8 * HOUR)
    assert _when(plan, T0 + 8 * HOUR + dt.timedelta(minutes=1))[0]


def test_without_a_deadline_the_window_runs_from_first_seen() -> None:
    plan = PlannedRecreate("ClaimSwap", "grow", deadline=None)  # window 6 h from T0
    assert _when(plan, T0) == (False, T0 + 5 * HOUR)


def test_the_deadline_wins_over_a_later_quiet_moment() -> None:
    plan = PlannedRecreate("GPUUnhealthyMigration", "ecc", deadline=T0 + 3 * HOUR)
    go, _ = _when(plan, T0 + 3 * HOUR - dt.timedelta(minutes=1))  # inside the 2 min lead
    assert go


def test_urgent_or_unforecast_plans_go_at_once() -> None:
    urgent = PlannedRecreate("ClaimSwap", "gpu memory used up", T0 + 10 * HOUR, urgent=True)
    assert _when(urgent, T0) == (True, T0)
    plain = PlannedRecreate("ClaimSwap", "grow", T0 + 10 * HOUR)
    assert _when(plain, T0, forecast=None) == (True, T0)


def test_a_shrink_waits_for_sustained_low_use_and_a_gap_starts_again() -> None:
    seen, day = FirstSeen(), dt.timedelta(hours=24)
    passes = [(0, True, False), (23, True, False), (24, True, True),
              (25, False, False), (26, True, False), (50, True, True)]  # fmt: skip
    for hours, wanted, expected in passes:
        seen.begin_pass()
        now = T0 + hours * HOUR
        held = wanted and sustained(seen, "pod/shrink/gpu", now, day)
        seen.end_pass()
        assert held is expected, hours


def test_a_burst_is_a_rise_above_the_ratio_within_the_lookahead() -> None:
    three_hours = dt.timedelta(hours=3)
    # At 02:30 (1.0 cores) the morning rise to 2.0 at 04:00 is within three hours.
    assert burst_ahead(EVENING, T0 + 8.5 * HOUR, three_hours, 1.5)
    # At 18:30 the load only falls; at 04:30 the rise to 4.0 at 05:00 is only x2 of 2.0.
    assert not burst_ahead(EVENING, T0 + 0.5 * HOUR, three_hours, 1.5)
    assert not burst_ahead(EVENING, T0 + 10.5 * HOUR, three_hours, 2.5)
    # Past the forecast's end, or without one, nothing is known: no burst.
    assert not burst_ahead(EVENING, T0 + 30 * HOUR, three_hours, 1.5)
    assert not burst_ahead(None, T0, three_hours, 1.5)
