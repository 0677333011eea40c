"""`bridgescale dev`: build, start, inspect and stop the local cluster."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bridgescale.localcluster.build import BuildError
from bridgescale.localcluster.environment import STARTUP_ERRORS, LocalEnvironment
from bridgescale.localcluster.settings import LocalClusterSettings

console = Console(stderr=True)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "dev", help="the local cluster for development, tests and the demo"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build etcd and the control plane into the cache")
    build.set_defaults(handler=_build)

    up = actions.add_parser("up", help="start the local cluster and write .bridgescale/env")
    up.add_argument("--nodes", type=int, help="simulated nodes without a GPU (default 3)")
    up.add_argument(
        "--no-fleet", action="store_true", help="do not create the demo fleet in `bridges`"
    )
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop everything `dev up` started")
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", help="say what runs")
    status.set_defaults(handler=_status)

    mint = actions.add_parser(
        "kubeconfig", help="mint a kubeconfig that authenticates as a service account"
    )
    mint.add_argument("service_account", metavar="NAMESPACE/NAME")
    mint.add_argument("--output", type=Path, help="where to write it (default: state folder)")
    mint.set_defaults(handler=_kubeconfig)

    for sub in (build, up, down, status, mint):
        sub.add_argument("--kubernetes-version", help="release to build and run, e.g. v1.36.3")
        sub.add_argument("--state-dir", type=Path, help="state folder (default .bridgescale/)")


def _settings(arguments: argparse.Namespace) -> LocalClusterSettings:
    overrides: dict[str, Any] = {}
    if arguments.kubernetes_version:
        overrides["kubernetes_version"] = arguments.kubernetes_version
    if arguments.state_dir:
        overrides["state_dir"] = arguments.state_dir
    if getattr(arguments, "nodes", None) is not None:
        overrides["nodes"] = arguments.nodes
    if getattr(arguments, "no_fleet", False):
        overrides["fleet"] = False
    return LocalClusterSettings(**overrides)


def _environment(arguments: argparse.Namespace) -> LocalEnvironment:
    return LocalEnvironment(_settings(arguments), progress=lambda m: console.print(f"  {m}"))


def _build(arguments: argparse.Namespace) -> int:
    environment = _environment(arguments)
    try:
        with console.status("building the control plane (the first build takes a while)"):
            result = environment.build()
    except BuildError as error:
        console.print(f"[red]build failed:[/red] {error}")
        return 1
    how = "already cached" if result.cached else "built"
    console.print(f"control plane {how} in {result.seconds:.1f} s: {result.binaries_dir}")
    return 0


def _up(arguments: argparse.Namespace) -> int:
    environment = _environment(arguments)
    try:
        environment.up()
    except STARTUP_ERRORS as error:
        console.print(f"[red]dev up failed:[/red] {error}")
        return 1
    console.print(f"environment written to {environment.env_file}")
    return 0


def _down(arguments: argparse.Namespace) -> int:
    stopped = _environment(arguments).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _status(arguments: argparse.Namespace) -> int:
    status = _environment(arguments).status()
    table = Table("component", "state", "pid", "log")
    for component in status.components:
        state = "[green]running[/green]" if component.running else "[dim]stopped[/dim]"
        table.add_row(component.name, state, str(component.pid or ""), component.log or "")
    Console().print(table)
    if status.ready:
        Console().print(
            f"API server ready, version {status.server_version}; env: {status.env_file}"
        )
    else:
        Console().print("API server not ready")
    return 0 if status.ready else 3


def _kubeconfig(arguments: argparse.Namespace) -> int:
    namespace, _, name = arguments.service_account.partition("/")
    if not namespace or not name:
        console.print("[red]expected NAMESPACE/NAME, e.g. bridgescale-system/updater[/red]")
        return 2
    path = _environment(arguments).mint_kubeconfig(namespace, name, arguments.output)
    print(path)
    return 0
