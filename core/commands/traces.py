"""`bridgescale traces synthesize`: usage traces of simulation bridges, in the usage CSV format.

The usage comes from `bridgescale.simulator.workload`, the model the node simulator runs, so a
synthesized trace and a simulated cluster show the same behaviour for the same seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bridgescale.models.backtest import UsageTrace
from bridgescale.simulator import workload
from bridgescale.traces import write_usage_csv

START = 1_767_571_200  # Monday 2026-01-05 00:00 UTC
STEP = 300


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "traces", help="usage traces: synthesize bridge workloads"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synthesize = actions.add_parser(
        "synthesize", help="write a synthetic bridge fleet as series,timestamp,cpu,memory,vram"
    )
    synthesize.add_argument("--out", type=Path, required=True, help="CSV file (.gz to compress)")
    synthesize.add_argument("--series", type=_positive, default=100, help="containers")
    synthesize.add_argument("--days", type=_positive, default=14)
    synthesize.add_argument("--seed", type=int, default=1)
    synthesize.add_argument(
        "--shared-budget",
        action="store_true",
        help="bridges whose telemetry sidecar is a quarter of the router and busiest at night",
    )
    synthesize.set_defaults(handler=_synthesize)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def synthesize(series: int, days: int, seed: int, shared_budget: bool = False) -> UsageTrace:
    timestamps = START + STEP * np.arange(days * 86400 // STEP, dtype=np.float64)
    members = workload.fleet(series, seed, workload.SHARED_BUDGET if shared_budget else None)
    columns: dict[str, list[np.ndarray]] = {"cpu": [], "memory": [], "vram": []}
    for _, profile, member_seed in members:
        for resource, values in workload.usage(profile, member_seed, timestamps).items():
            columns[resource].append(values)
    return UsageTrace(
        [name for name, _, _ in members],
        np.repeat(np.arange(len(members), dtype=np.int64), timestamps.size),
        np.tile(timestamps, len(members)),
        {resource: np.concatenate(parts) for resource, parts in columns.items()},
    )


def _synthesize(arguments: argparse.Namespace) -> int:
    trace = synthesize(arguments.series, arguments.days, arguments.seed, arguments.shared_budget)
    write_usage_csv(arguments.out, trace)
    print(f"{arguments.out}: {len(trace.series)} series, {arguments.days} days")
    return 0
