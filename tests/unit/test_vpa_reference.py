"""The `vpa` baseline against recommendations worked out by hand (reference/vpa_reference.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from bridgescale.models.base import OomEvents, SampleBatch
from bridgescale.models.vpa import VpaRecommender

START = 1_700_000_000.0
CASES = json.loads((Path(__file__).parent / "reference" / "vpa_reference.json").read_text())


def _batches(case: dict[str, object]) -> list[tuple[SampleBatch, OomEvents]]:
    minutes = int(case["minutes"])
    time = START + 60.0 * np.arange(minutes)
    cpu = np.resize(np.asarray(case["cpu"], float), minutes)
    memory = np.resize(np.asarray(case["memory"], float), minutes)
    oom_minute = case["oom_at_minute"]
    cut = minutes if oom_minute is None else int(oom_minute)
    batches = []
    for part in (slice(0, cut), slice(cut, minutes)):
        samples = SampleBatch(
            np.zeros(time[part].size, np.int64),
            time[part],
            {"cpu": cpu[part], "memory": memory[part]},
        )
        batches.append((samples, OomEvents.none()))
    if oom_minute is not None:
        at = np.array([START + 60.0 * cut])
        batches[1] = (batches[1][0], OomEvents(np.zeros(1, np.int64), at, memory[:1]))
    return batches


@pytest.mark.parametrize("name", sorted(CASES))
def test_vpa_matches_hand_worked_reference(name: str) -> None:
    case = CASES[name]
    recommender = VpaRecommender()
    state = recommender.new_state(1)
    for samples, ooms in _batches(case):
        recommender.observe(state, samples, ooms)
    now = START + 60.0 * case["minutes"]
    recommendations = recommender.recommend(state, now)
    for resource, expected in case["expected"].items():
        got = recommendations[resource]
        assert got.reason[0] == 0
        assert got.target[0] == pytest.approx(expected["target"], rel=1e-9)
        assert got.lower_bound[0] == pytest.approx(expected["lower_bound"], rel=1e-9)
        assert got.upper_bound[0] == pytest.approx(expected["upper_bound"], rel=1e-9)


def test_vpa_has_no_recommendation_without_samples() -> None:
    recommender = VpaRecommender()
    state = recommender.new_state(2)
    samples = SampleBatch(np.array([0]), np.array([START]), {"cpu": np.array([np.nan])})
    recommender.observe(state, samples, OomEvents.none())
    assert recommender.recommend(state, START + 60) == {}
