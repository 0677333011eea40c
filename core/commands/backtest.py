"""`bridgescale backtest`: replay a usage trace through recommenders and score their limits."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bridgescale.models import registry
from bridgescale.models.backtest import METRICS, Limits, UsageTrace, limit_changes, metrics, replay
from bridgescale.models.backtest import oracle as oracle_limits
from bridgescale.traces import TraceError, read_usage_csv, write_limit_changes

console = Console(stderr=True)
Scores = dict[str, dict[str, dict[str, float]]]
HEADERS = {
    "relative_slack_mean": "slack mean",
    "relative_slack_median": "slack median",
    "overrun_day_fraction": "overrun days",
    "overrun_sample_fraction": "overrun samples",
    "changes_per_day_mean": "changes/day",
    "changes_per_day_p99": "changes/day p99",
    "footprint": "footprint",
}


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "backtest", help="replay a usage trace hour by hour and score the limits set"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        required=True,
        help="usage CSV: series,timestamp,cpu,memory[,vram] (gzip or plain)",
    )
    parser.add_argument(
        "--recommender",
        action="append",
        choices=registry.names(),
        help=f"repeat for several (default {registry.DEFAULT})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the metrics as the last line",
    )
    parser.add_argument(
        "--emit-limits",
        type=Path,
        metavar="OUT.csv",
        help="write series,timestamp,resource,limit at each change",
    )
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    names: list[str] = arguments.recommender or [registry.DEFAULT]
    try:
        trace = read_usage_csv(arguments.trace)
    except TraceError as error:
        console.print(f"[red]backtest:[/red] {error}")
        return 2
    console.print(f"{arguments.trace}: {len(trace.series)} series, {trace.timestamp.size} samples")
    all_limits = {name: _limits(trace, name) for name in names}
    scores: Scores = {name: metrics(trace, limits) for name, limits in all_limits.items()}
    Console(width=max(Console().width, 120)).print(_table(scores))
    if arguments.emit_limits:
        changes = [(n, c) for n, limits in all_limits.items() for c in limit_changes(trace, limits)]
        write_limit_changes(arguments.emit_limits, changes, with_recommender=len(names) > 1)
        console.print(f"limits written to {arguments.emit_limits}")
    if arguments.json:
        print(json.dumps({"recommenders": scores}))
    return 0


def _limits(trace: UsageTrace, name: str) -> Limits:
    started = time.monotonic()
    if name == registry.ORACLE:
        limits = oracle_limits(trace)
    else:
        limits = replay(trace, registry.create(name))
    console.print(f"{name}: replayed in {time.monotonic() - started:.1f} s")
    return limits


def _table(scores: Scores) -> Table:
    table = Table(
        "recommender",
        "resource",
        *HEADERS.values(),
        title="backtest (after a 2-day warm-up per series)",
    )
    for name, resources in scores.items():
        for resource, values in resources.items():
            table.add_row(name, resource, *(f"{values[m]:.4g}" for m in METRICS))
    return table
