"""`bridgescale demo`: the product at work on the local cluster.

For now it brings the local environment up and shows the cluster it runs on; the demo fleet,
the recommender and the updater join it as they land.
"""

from __future__ import annotations

import argparse
from typing import Any

from kubernetes import client
from rich.console import Console
from rich.table import Table

from bridgescale.localcluster.environment import STARTUP_ERRORS, LocalEnvironment
from bridgescale.localcluster.settings import LocalClusterSettings

console = Console()


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="run bridgescale on the local cluster and show what it does"
    )
    parser.set_defaults(handler=_demo)


def _demo(arguments: argparse.Namespace) -> int:
    environment = LocalEnvironment(LocalClusterSettings(), progress=console.print)
    try:
        environment.up()
    except STARTUP_ERRORS as error:
        console.print(f"[red]the local cluster did not start:[/red] {error}")
        return 1
    with environment.api_client() as api:
        version = client.VersionApi(api).get_code()
        nodes = client.CoreV1Api(api).list_node().items
    console.print(
        f"Kubernetes API server {version.git_version} at {environment.control_plane.server}"
    )
    table = Table("node", "cpu", "memory", "ready", title=f"{len(nodes)} nodes")
    for node in nodes:
        status = node.status or client.V1NodeStatus()
        allocatable = status.allocatable or {}
        ready = next((c.status for c in status.conditions or [] if c.type == "Ready"), "Unknown")
        name = node.metadata.name if node.metadata else ""
        table.add_row(name, allocatable.get("cpu", ""), allocatable.get("memory", ""), ready)
    console.print(table)
    console.print(f"Use it: set -a; . {environment.env_file}; kubectl get ns")
    console.print("Stop it: .venv/bin/bridgescale dev down")
    return 0
