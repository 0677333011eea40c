"""Speed of the `bridgescale` recommender at fleet scale.

10,000 containers, 8 days of 5-minute samples (cpu and memory), fed hour by hour as the
recommender would receive them, with a recommendation for every container at every hour.
The last line is `series=<n> seconds=<s> peak_rss_mb=<mb>`.

    python bench/models.py [--series N] [--days D]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bridgescale.models.base import HOUR, OomEvents, SampleBatch
from bridgescale.models.bridgescale import BridgescaleRecommender

START = 1_700_006_400.0  # a UTC hour
PER_HOUR = 12


def hourly_batches(series: int, days: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    base_cpu = rng.lognormal(-1.0, 1.0, series)
    base_memory = rng.lognormal(21.0, 1.0, series)
    container = np.repeat(np.arange(series, dtype=np.int64), PER_HOUR)
    offsets = np.tile(300.0 * np.arange(PER_HOUR), series)
    for hour in range(days * 24):
        timestamp = START + hour * HOUR + offsets
        diurnal = 1.0 + 0.5 * np.sin(2 * np.pi * (timestamp % 86400) / 86400)
        cpu = base_cpu[container] * diurnal * rng.gamma(4.0, 0.25, container.size)
        memory = base_memory[container] * (1 + 0.1 * rng.random(container.size))
        yield SampleBatch(container, timestamp, {"cpu": cpu, "memory": memory})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=8)
    arguments = parser.parse_args()
    recommender = BridgescaleRecommender()
    state = recommender.new_state(arguments.series)
    elapsed = 0.0
    recommended = 0
    for batch in hourly_batches(arguments.series, arguments.days, seed=1):
        started = time.perf_counter()
        recommender.observe(state, batch, OomEvents.none())
        now = float(batch.timestamp.max()) + 1
        recommendations = recommender.recommend(state, np.ceil(now / HOUR) * HOUR)
        elapsed += time.perf_counter() - started
        recommended += int((recommendations["cpu"].reason == 0).sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"recommendations with a target: {recommended} (cpu), time excludes data generation")
    print(f"series={arguments.series} seconds={elapsed:.1f} peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
