"""`bridgescale recommender`: the recommender service, or one cycle with `--once`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridgescale import kube
from bridgescale.history import History, PrometheusSettings, PrometheusUnavailable
from bridgescale.recommender.cycle import Engine
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.recommender.service import Service
from bridgescale.recommender.settings import RecommenderSettings

logger = logging.getLogger(__name__)


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared with `bridgescale recommend`; each overrides its environment variable."""
    parser.add_argument("--kubeconfig", type=Path, help="else in-cluster or $KUBECONFIG")
    parser.add_argument("--prometheus-url", help="env BRIDGESCALE_PROMETHEUS_URL")
    parser.add_argument("--prometheus-ca-file", type=Path, help="CA that signed Prometheus")
    parser.add_argument("--prometheus-token-file", type=Path, help="bearer token file")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "recommender", help="run the recommender: Prometheus history to recommendations"
    )
    parser.add_argument("--once", action="store_true", help="run one cycle and exit")
    parser.add_argument("--interval", type=int, help="seconds between cycles")
    parser.add_argument("--port", type=int, help="port of /healthz, /readyz and /metrics")
    parser.add_argument(
        "--no-leader-election", action="store_true", help="one replica only: skip the Lease"
    )
    add_connection_flags(parser)
    parser.set_defaults(handler=_run)


def settings_from(
    arguments: argparse.Namespace,
) -> tuple[RecommenderSettings, PrometheusSettings]:
    """Flags over environment over defaults."""
    overrides: dict[str, Any] = {}
    for flag, name in (
        ("interval", "interval_seconds"),
        ("port", "port"),
        ("kubeconfig", "kubeconfig"),
    ):
        if getattr(arguments, flag, None) is not None:
            overrides[name] = getattr(arguments, flag)
    if getattr(arguments, "no_leader_election", False):
        overrides["leader_election"] = False
    prometheus: dict[str, Any] = {}
    for flag, name in (
        ("prometheus_url", "url"),
        ("prometheus_ca_file", "ca_file"),
        ("prometheus_token_file", "bearer_token_file"),
    ):
        if getattr(arguments, flag, None) is not None:
            prometheus[name] = getattr(arguments, flag)
    return RecommenderSettings(**overrides), PrometheusSettings(**prometheus)


def build_engine(arguments: argparse.Namespace, *, read_only: bool = False) -> Engine | None:
    """The engine the flags and environment describe; None (logged) if a setting is invalid."""
    try:
        settings, prometheus = settings_from(arguments)
    except ValidationError as error:
        logger.error("invalid settings: %s", error)
        return None
    api = kube.new_client(settings.kubeconfig)
    metrics = RecommenderMetrics()
    history = History(prometheus, on_query=metrics.prometheus_queries.inc)
    return Engine(api, history, settings, metrics, read_only=read_only)


def _run(arguments: argparse.Namespace) -> int:
    engine = build_engine(arguments)
    if engine is None:
        return 2
    service = Service(engine)
    if not arguments.once:
        service.serve()
        return 0
    try:
        summary = engine.run_cycle(checkpoint=True)
    except (kube.KubeError, PrometheusUnavailable) as error:
        logger.error("cycle failed: %s", error)
        return 1
    logger.info(
        "one cycle: %d namespaces, %d workloads, %d points in %.1f s",
        summary.namespaces,
        summary.workloads,
        summary.points,
        summary.seconds,
    )
    return 1 if summary.unavailable else 0
