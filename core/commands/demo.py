"""`bridgescale demo`: the product at work on the local cluster.

It brings the local environment up (the control plane, simulated nodes, the demo fleet of
bridges with a week of history in Prometheus), runs one recommender cycle, which publishes a
ResourceRecommendation per workload, and shows the advice next to what each container has now.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

from rich.console import Console

from bridgescale.localcluster.environment import STARTUP_ERRORS, LocalEnvironment
from bridgescale.localcluster.fleet import NAMESPACE
from bridgescale.localcluster.settings import LocalClusterSettings

console = Console()


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="run bridgescale on the local cluster and show what it does"
    )
    parser.set_defaults(handler=_demo)


def _bridgescale(environment: LocalEnvironment, *arguments: str) -> int:
    """Run a bridgescale command against the local environment, as a user would."""
    env = dict(os.environ)
    for line in environment.env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    command = [sys.executable, "-m", "bridgescale", *arguments]
    return subprocess.run(command, env=env, check=False).returncode


def _demo(arguments: argparse.Namespace) -> int:
    environment = LocalEnvironment(LocalClusterSettings(), progress=console.print)
    console.rule("1. the local cluster: real control plane, simulated nodes, a fleet of bridges")
    try:
        environment.up()
    except STARTUP_ERRORS as error:
        console.print(f"[red]the local environment did not start:[/red] {error}")
        return 1
    console.rule("2. one recommender cycle: a week of history in, recommendations published")
    if _bridgescale(environment, "recommender", "--once", "--no-leader-election") != 0:
        console.print("[red]the recommender cycle failed; see the lines above[/red]")
        return 1
    console.rule(f"3. what each container of `{NAMESPACE}` has now, and what it should have")
    if _bridgescale(environment, "recommend", "--namespace", NAMESPACE) != 0:
        return 1
    console.print(
        f"\nThe recommendations are objects in the cluster:\n"
        f"  set -a; . {environment.env_file}; set +a\n"
        f"  kubectl get resourcerecommendations -n {NAMESPACE}\n"
        f"Stop everything: .venv/bin/bridgescale dev down"
    )
    return 0
