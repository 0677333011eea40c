"""A container's state survives a checkpoint through JSON and stays small."""

import json

import numpy as np

from bridgescale.models import checkpoint
from bridgescale.models.base import OomEvents, SampleBatch
from bridgescale.models.bridgescale import BridgescaleRecommender


def test_checkpoint_round_trip_gives_the_same_recommendation() -> None:
    recommender = BridgescaleRecommender()
    state = recommender.new_state(3)
    time = 1_700_000_000.0 + 300.0 * np.arange(600)
    rng = np.random.default_rng(7)
    for part in np.array_split(np.arange(600), 50):
        container = np.arange(part.size, dtype=np.int64) % 3
        samples = SampleBatch(
            container,
            time[part],
            {"cpu": rng.gamma(2.0, 0.2, part.size), "memory": rng.uniform(1e9, 2e9, part.size)},
        )
        recommender.observe(state, samples, OomEvents.none())
        recommender.recommend(state, float(time[part][-1]) + 1)
    text = [json.dumps(checkpoint.save(state, i)) for i in range(3)]
    assert max(len(t) for t in text) < 16_000
    restored = checkpoint.load(recommender.new_state(1), [json.loads(t) for t in text])
    now = float(time[-1]) + 3600
    before = recommender.recommend(state, now)
    after = recommender.recommend(restored, now)
    for resource, recommendation in before.items():
        np.testing.assert_array_equal(recommendation.target, after[resource].target)
