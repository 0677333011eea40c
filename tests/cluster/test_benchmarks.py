"""The benchmarks of bench/ at a tiny scale, run as a person runs them (their own local cluster,
their own process), so that they keep working and keep ending with their line of figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bridgescale.localcluster.settings import find_project_root

from .conftest import TEST_PORT_BASE

BENCH = find_project_root(Path(__file__)) / "bench"
RECOMMENDER_PORT_BASE = TEST_PORT_BASE + 60  # its cluster takes +60 to +67
UPDATER_PORT_BASE = TEST_PORT_BASE + 70  # +70 to +77, the simulator's metrics +80


def run_benchmark(script: str, *arguments: str) -> list[str]:
    """The benchmark's output lines; it must exit 0."""
    answer = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    return answer.stdout.strip().splitlines()


def figures(line: str, names: list[str]) -> dict[str, float]:
    """`name=value ...` in exactly this order, each value a number."""
    pattern = " ".join(rf"{name}=(-?[0-9.]+)" for name in names)
    found = re.fullmatch(pattern, line)
    assert found, f"not a line of figures {names}: {line!r}"
    return {name: float(value) for name, value in zip(names, found.groups(), strict=True)}


def test_the_recommender_benchmark_measures_a_full_and_an_incremental_cycle(
    tmp_path: Path,
) -> None:
    lines = run_benchmark(
        "recommender.py",
        "--containers", "20",
        "--days", "1",
        "--port-base", str(RECOMMENDER_PORT_BASE),
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    names = ["containers", "full_seconds", "incremental_seconds", "peak_rss_mb", "queries"]
    line = figures(lines[-1], names)
    assert line["containers"] == 20
    assert line["full_seconds"] > 0 and line["incremental_seconds"] > 0
    assert 30 < line["peak_rss_mb"] < 1024
    # Four queries (cpu, memory, GPU memory, OOM kills) per piece of history read in one
    # namespace: the full cycle's week in seven pieces of a day, then one step in each of the
    # two incremental cycles.
    assert line["queries"] == 4 * (7 + 1 + 1)
    points = re.search(r"full cycle: (\d+) points, incremental: (\d+) points", "\n".join(lines))
    assert points, lines
    full, incremental = int(points[1]), int(points[2])
    # A day of 5-minute steps for cpu and memory, then one new step of each.
    assert 20 * 2 * 200 < full <= 20 * 2 * 288
    assert incremental == 20 * 2


def test_the_updater_benchmark_sees_every_pod_resized_in_place(tmp_path: Path) -> None:
    lines = run_benchmark(
        "updater.py",
        "--pods", "20",
        "--nodes", "2",
        "--port-base", str(UPDATER_PORT_BASE),
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    line = figures(lines[-1], ["pods", "seconds", "p50_ms", "p95_ms"])
    assert line["pods"] == 20
    # No pod waits longer than the whole run, which is printed to a tenth of a second.
    assert 0 < line["p50_ms"] <= line["p95_ms"] <= (line["seconds"] + 0.05) * 1000 + 1
