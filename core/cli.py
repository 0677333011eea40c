"""The `bridgescale` console script: one command, a subcommand per job."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bridgescale import __version__, kube, logs
from bridgescale.commands import (
    backtest,
    demo,
    dev,
    recommend,
    recommender,
    settings,
    traces,
    updater,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgescale",
        description="Vertical autoscaling without restarts for stateful Kubernetes workloads.",
    )
    parser.add_argument("--version", action="version", version=f"bridgescale {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text for people, json lines for log pipelines",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(commands)
    dev.register(commands)
    updater.register(commands)
    backtest.register(commands)
    traces.register(commands)
    recommender.register(commands)
    recommend.register(commands)
    settings.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    logs.configure(arguments.log_level, arguments.log_format)
    try:
        sys.exit(arguments.handler(arguments))
    except kube.KubeConfigError as error:
        logging.getLogger("bridgescale").error("%s", error)
        sys.exit(2)
