"""The recommender's fleet between hourly commits: a peak of the hour in progress raises the
recommendation at once, without waiting for the hour to end."""

import numpy as np

from bridgescale.models.base import HOUR
from bridgescale.models.registry import create
from bridgescale.quantity import GiB
from bridgescale.recommender.fleet import ContainerKey, Fleet, Saved, Usage

KEY = ContainerKey("bridges", "Deployment", "pointcloud", "router")
START = 1_767_571_200.0  # midnight UTC


def _week(fleet: Fleet, end: float, level: float) -> None:
    times = np.arange(end - 7 * 24 * HOUR, end, 300.0) + 300.0
    usage = [
        Usage(KEY, "memory", tuple(times), tuple(np.full(len(times), level))),
        Usage(KEY, "cpu", tuple(times), tuple(np.full(len(times), 1.0))),
    ]
    fleet.observe(usage, [], end)


def test_a_peak_in_the_hour_in_progress_raises_memory_before_the_hour_ends() -> None:
    fleet = Fleet(create("bridgescale"))
    hour_start = START + 7 * 24 * HOUR
    _week(fleet, hour_start, 2 * GiB)
    committed = fleet.recommend(hour_start + 60)[KEY].target["memory"]
    assert committed < 3 * GiB

    spike = Usage(KEY, "memory", (hour_start + 600,), (6 * GiB,))
    fleet.observe([spike], [], hour_start + 600)
    between = fleet.recommend(hour_start + 900)[KEY].target["memory"]
    assert between > 6 * GiB

    # The next hour's commit agrees with what was shown in between.
    after = fleet.recommend(hour_start + HOUR + 60)[KEY].target["memory"]
    assert after == between


def test_a_fleet_restored_within_the_hour_recommends_what_the_saved_one_does() -> None:
    """The state took in the hour's recommendation before it was saved; a restarted recommender
    restoring it in the same hour must not take it in again (charging the candidates twice)."""
    rng = np.random.default_rng(11)
    fleet = Fleet(create("bridgescale"))
    hour_start = START + 7 * 24 * HOUR
    times = np.arange(hour_start - 7 * 24 * HOUR, hour_start, 300.0) + 300.0
    daily = 1 + 0.5 * np.sin(2 * np.pi * times / (24 * HOUR))
    usage = [
        Usage(
            KEY, "memory", tuple(times), tuple(2 * GiB * daily * rng.uniform(0.8, 1.2, times.size))
        ),
        Usage(KEY, "cpu", tuple(times), tuple(daily * rng.gamma(4.0, 0.25, times.size))),
    ]
    fleet.observe(usage, [], hour_start)
    fleet.recommend(hour_start + 60)
    saved = Saved(
        KEY,
        fleet.save(KEY),
        float(fleet.history_end[0]),
        committed_hour=fleet.committed_hour,
    )

    restarted = Fleet(create("bridgescale"))
    assert restarted.restore_all([saved]) == []
    later = hour_start + 120
    assert restarted.recommend(later)[KEY].target == fleet.recommend(later)[KEY].target
    for name, values in fleet.state.items():  # the candidates' costs were not charged again
        np.testing.assert_array_equal(restarted.state[name], values, err_msg=name)
