"""`bridgescale recommend`: advice without installing anything. Reads the cluster and
Prometheus, writes nothing, prints per container what it has, used, and should have."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from bridgescale import kube
from bridgescale.commands.recommender import add_connection_flags, build_engine
from bridgescale.kube import workloads as kube_workloads
from bridgescale.recommender.report import ReportRow, as_document, report_rows

logger = logging.getLogger(__name__)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "recommend", help="print recommendations for a namespace (or all) once; writes nothing"
    )
    parser.add_argument("--namespace", "-n", help="only this namespace (default: every one)")
    parser.add_argument("--output", "-o", choices=["table", "json", "yaml"], default="table")
    add_connection_flags(parser)
    parser.set_defaults(handler=_run)


def _run(arguments: argparse.Namespace) -> int:
    engine = build_engine(arguments, read_only=True)
    if engine is None:
        return 2
    api = engine.api
    try:
        namespaces = (
            [arguments.namespace] if arguments.namespace else kube_workloads.all_namespaces(api)
        )
        now = engine.clock()
        reads = engine.read(now, namespaces)
    except kube.KubeError as error:
        logger.error("cannot read the cluster: %s", error)
        return 1
    for read in reads:
        if read.history_error:
            logger.error("namespace %s: %s", read.namespace, read.history_error)
    rows = report_rows(reads, engine.recommend(reads, now))
    _print(rows, arguments.output)
    return 1 if any(read.history_error for read in reads) else 0


def _print(rows: list[ReportRow], output: str) -> None:
    document = as_document(rows)
    if output == "json":
        print(json.dumps(document, indent=2))
    elif output == "yaml":
        print(yaml.safe_dump(document, sort_keys=False), end="")
    else:
        Console().print(_table(document["recommendations"]))


def _table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="bridgescale recommendations", show_lines=False)
    for column in ("namespace", "workload", "container", "resource", "request", "limit"):
        table.add_column(column)
    for column in ("peak used", "target", "lower", "upper"):
        table.add_column(column, justify="right")
    for entry in entries:
        workload = f"{entry['kind']}/{entry['name']}"
        for resource in ("cpu", "memory", "gpu-memory"):
            target = entry["target"].get(resource)
            if target is None and resource not in entry["missing"]:
                continue
            table.add_row(
                entry["namespace"],
                workload,
                entry["container"] or "(pod)",  # the envelope of pod-level resources
                resource,
                entry["current"]["requests"].get(resource, "-"),
                entry["current"]["limits"].get(resource, "-"),
                entry["usage"].get(resource, "-"),
                target or f"none: {entry['missing'].get(resource, '')}",
                entry["lowerBound"].get(resource, "-"),
                entry["upperBound"].get(resource, "-"),
            )
    return table
