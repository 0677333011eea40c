"""`bridgescale backtest`: replay a usage trace through recommenders and score their limits."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bridgescale.models import envelope, registry
from bridgescale.models.backtest import METRICS, Limits, UsageTrace, limit_changes, metrics, replay
from bridgescale.models.backtest import oracle as oracle_limits
from bridgescale.models.envelope import envelope_recommender
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
        "--envelope",
        action="store_true",
        help="also size each multi-container pod (series pod/container) as one envelope "
        "from its summed usage, and compare with per-container sizing",
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
    wide = Console(width=max(Console().width, 120))
    wide.print(_table(scores))
    result: dict[str, Any] = {"recommenders": scores}
    if arguments.envelope:
        envelopes = _envelopes(trace, all_limits)
        wide.print(_envelope_table(envelopes))
        result["envelope"] = envelopes
    if arguments.emit_limits:
        changes = [(n, c) for n, limits in all_limits.items() for c in limit_changes(trace, limits)]
        write_limit_changes(arguments.emit_limits, changes, with_recommender=len(names) > 1)
        console.print(f"limits written to {arguments.emit_limits}")
    if arguments.json:
        print(json.dumps(result))
    return 0


def _envelopes(trace: UsageTrace, all_limits: dict[str, Limits]) -> Scores:
    """Per recommender: its envelopes on the pods' summed usage against its own
    per-container limits."""
    pods = envelope.pod_trace(trace)
    console.print(
        f"envelope: {len(pods.pods.series)} pods, {int((pods.containers >= 2).sum())} "
        "with several containers"
    )
    return {
        name: envelope.compare(trace, limits, pods, _limits(pods.pods, name, envelope=True))
        for name, limits in all_limits.items()
    }


def _limits(trace: UsageTrace, name: str, envelope: bool = False) -> Limits:
    started = time.monotonic()
    if name == registry.ORACLE:
        limits = oracle_limits(trace)
    elif envelope:
        limits = replay(trace, envelope_recommender(name))
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


def _envelope_table(scores: Scores) -> Table:
    table = Table(
        "recommender",
        "resource",
        "pods",
        "footprint per container",
        "footprint envelope",
        "saving",
        "overrun days per container",
        "overrun days envelope",
        title="pod envelope against per-container sizing (multi-container pods)",
    )
    for name, resources in scores.items():
        for resource, values in resources.items():
            table.add_row(name, resource, *(f"{values[m]:.4g}" for m in envelope.ENVELOPE_METRICS))
    return table
