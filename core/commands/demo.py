"""`bridgescale demo`: the product at work on the local cluster.

It brings the local environment up (the control plane, simulated nodes, the demo fleet of
bridges with a week of history in Prometheus), runs one recommender cycle and shows its advice,
then starts the recommender and the updater as services and plays a scenario of a few minutes
on the fleet (steady, a load burst, point clouds on the GPU, calm) while a live table shows
usage, recommendation, applied resources and restarts per container. It ends with a summary
and a chart, and leaves the environment running.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridgescale.localcluster import demo_report
from bridgescale.localcluster.demo import (
    READ_ERRORS,
    RECOMMENDER,
    UPDATER,
    Observer,
    ServiceFailed,
    Services,
    play,
    user_env,
)
from bridgescale.localcluster.demo_report import ContainerView, Snapshot, Summary
from bridgescale.localcluster.environment import STARTUP_ERRORS, LocalEnvironment
from bridgescale.localcluster.fleet import NAMESPACE
from bridgescale.localcluster.scenario import Phase, Schedule
from bridgescale.localcluster.settings import LocalClusterSettings
from bridgescale.quantity import GiB

# Logs (no terminal) get a width that fits the table; a terminal keeps its own.
console = Console(width=None if Console().is_terminal else 150)
REFRESH_SECONDS = 3.0
LOG_SECONDS = 30.0
CHART_POD, CHART_CONTAINER = "lidar-bridge-0", "router"
# A snapshot may fail now and then on a busy machine; this many in a row end the demo.
MAX_FAILED_SNAPSHOTS = 20


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="run bridgescale on the local cluster and show what it does"
    )
    parser.add_argument(
        "--minutes", type=float, default=6.0, help="length of the scenario (default 6)"
    )
    parser.add_argument(
        "--no-live", action="store_true", help="log lines instead of a live table (no terminal)"
    )
    parser.add_argument("--state-dir", type=Path, help="state folder (default .bridgescale/)")
    parser.set_defaults(handler=_demo)


def _demo(arguments: argparse.Namespace) -> int:
    if not 0 < arguments.minutes <= 120:
        console.print("[red]--minutes must be above 0 and at most 120[/red]")
        return 2
    overrides = {"state_dir": arguments.state_dir} if arguments.state_dir else {}
    environment = LocalEnvironment(LocalClusterSettings(**overrides), progress=console.print)
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
    if _bridgescale(environment, "recommend", "--namespace", NAMESPACE) != 0:
        console.print("[red]`bridgescale recommend` failed; see the lines above[/red]")
        return 1
    services = Services(environment)
    _reset_load(environment)  # a demo stopped hard may have left a phase's load behind
    # SIGTERM ends the demo as Ctrl-C does, so that the services are stopped with it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _scenario(environment, services, arguments)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    finally:
        services.stop()
        _reset_load(environment)
        console.print(
            f"The recommender and the updater are stopped; the local cluster keeps running.\n"
            f"  set -a; . {environment.env_file}; set +a\n"
            f"  kubectl get resourcerecommendations,pods -n {NAMESPACE}\n"
            f"Stop everything: .venv/bin/bridgescale dev down"
        )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _bridgescale(environment: LocalEnvironment, *arguments: str) -> int:
    """Run a bridgescale command against the local environment, as a user would."""
    command = [sys.executable, "-m", "bridgescale", *arguments]
    return subprocess.run(command, env=user_env(environment), check=False).returncode


def _scenario(
    environment: LocalEnvironment, services: Services, arguments: argparse.Namespace
) -> int:
    schedule = Schedule(arguments.minutes * 60)
    with environment.api_client() as api:
        observer = Observer(api, environment.prometheus.url)
        try:
            before = observer.snapshot(0.0, "before")
        except READ_ERRORS as error:
            console.print(f"[red]the fleet could not be read:[/red] {error}")
            return 1
        console.rule("3. the recommender and the updater start as services")
        try:
            services.start()
            services.wait_ready()
        except ServiceFailed as error:
            console.print(f"[red]{error}[/red]")
            return 1
        console.print(
            f"recommender /metrics at {services.recommender_address}, updater /metrics at "
            f"{services.updater_address} (Prometheus jobs {RECOMMENDER}, {UPDATER})"
        )
        console.rule(f"4. the scenario: {_phases(schedule)}")
        try:
            snapshots = _play(api, observer, services, schedule, live=_live(arguments))
        except (ServiceFailed, _ObservationFailed) as error:
            console.print(f"[red]{error}[/red]")
            return 1
    console.rule("5. what happened")
    summary = demo_report.summarize(snapshots, before)
    _print_summary(summary)
    chart = demo_report.chart(
        snapshots,
        CHART_POD,
        CHART_CONTAINER,
        environment.state_dir / "demo" / f"{CHART_POD}.png",
    )
    console.print(f"chart: {chart.resolve()}")
    return 0


def _phases(schedule: Schedule) -> str:
    return ", ".join(
        f"{phase.name} ({end - start:.0f} s)" for start, end, phase in schedule.bounds()
    )


def _live(arguments: argparse.Namespace) -> bool:
    return not arguments.no_live and console.is_terminal


class _ObservationFailed(RuntimeError):
    """The cluster or Prometheus could not be read for too long."""


def _play(
    api: Any, observer: Observer, services: Services, schedule: Schedule, *, live: bool
) -> list[Snapshot]:
    """Play the schedule, taking a snapshot every few seconds; the snapshots taken."""
    snapshots: list[Snapshot] = []
    start = time.monotonic()
    failures = 0
    last_log = -LOG_SECONDS
    current: str | None = None
    with Live(console=console, auto_refresh=False) if live else nullcontext() as display:
        while (phase := schedule.phase_at(elapsed := time.monotonic() - start)) is not None:
            services.check()
            try:
                play(api, phase)
                snapshot = observer.snapshot(elapsed, phase.name)
            except READ_ERRORS as error:
                failures += 1
                if failures >= MAX_FAILED_SNAPSHOTS:
                    message = f"reading the fleet failed {failures} times: {error}"
                    raise _ObservationFailed(message) from error
                time.sleep(REFRESH_SECONDS)
                continue
            failures = 0
            snapshots.append(snapshot)
            title = _title(phase, schedule, elapsed)
            if display is not None:
                display.update(_table(snapshot, title), refresh=True)
            elif phase.name != current or elapsed - last_log >= LOG_SECONDS:
                console.print(_table(snapshot, title))
                last_log = elapsed
            current = phase.name
            time.sleep(REFRESH_SECONDS)
    if not snapshots:
        raise _ObservationFailed("no snapshot of the fleet could be taken")
    return snapshots


def _title(phase: Phase, schedule: Schedule, elapsed: float) -> str:
    return (
        f"phase: {phase.name} | {elapsed:.0f} s of {schedule.seconds:.0f} s | load: {_load(phase)}"
    )


def _load(phase: Phase) -> str:
    parts = [f"{app} x{scale:g}" for app, scale in phase.load.items()]
    parts += [f"{app} GPU x{scale:g}" for app, scale in phase.gpu_load.items()]
    return ", ".join(parts) or "normal"


COLUMNS = (
    "\npod", "\ncontainer", "\nuid", "cpu\nused", "\ntgt", "\nreq/lim",
    "mem GiB\nused", "\ntgt", "\nreq/lim", "GPU GiB\nused/tgt", "\nslice", "\nrst",
)  # fmt: skip


def _table(snapshot: Snapshot, title: str) -> Table:
    """One row per container, compact enough for a terminal of about 120 columns."""
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False
    )
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index < 3 else "right", no_wrap=True)
    for view in sorted(snapshot.containers, key=lambda v: (v.pod, v.container)):
        table.add_row(
            view.pod,
            view.container,
            view.uid[:8],
            _cores(view.used.get("cpu")),
            _cores(view.target.get("cpu")),
            f"{_cores(view.requests.get('cpu'))}/{_cores(view.limits.get('cpu'))}",
            _gib(view.used.get("memory")),
            _gib(view.target.get("memory")),
            f"{_gib(view.requests.get('memory'))}/{_gib(view.limits.get('memory'))}",
            _gpu(view),
            ",".join(_slice(device) for device in view.gpu_devices),
            str(view.restarts),
        )
    return table


def _gpu(view: ContainerView) -> str:
    if not view.gpu_devices and "gpu-memory" not in view.target:
        return ""
    return f"{_gib(view.used.get('gpu-memory'))}/{_gib(view.target.get('gpu-memory'))}"


def _slice(device: str) -> str:
    """The MIG-like profile in a simulated device's name (gpu-0-2g-20gb-1 -> 2g.20gb)."""
    found = re.search(r"(\d+g)-(\d+gb)", device)
    return f"{found.group(1)}.{found.group(2)}" if found else device


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GiB:.1f}"


def _print_summary(summary: Summary) -> None:
    console.print(
        f"summary: resizes={summary.resizes} resized_pods={len(summary.resized_pods)} "
        f"recreations={summary.recreations} restarts={summary.restarts} "
        f"restarts_of_resized={summary.restarts_of_resized} oom_kills={summary.oom_kills}"
    )
    console.print(
        f"  {summary.resizes} in-place resizes of {', '.join(summary.resized_pods) or 'no pod'}; "
        f"{summary.recreations} pods recreated; {summary.restarts} container restarts "
        f"({summary.restarts_of_resized} in resized pods); {summary.oom_kills} OOM kills"
    )
    for label, slack in (("before", summary.slack_before), ("after", summary.slack_after)):
        console.print(
            f"slack {label}: cpu={slack.cpu_cores:.2f} cores "
            f"memory={slack.memory_bytes / GiB:.2f} GiB (requests minus usage, namespace "
            f"{NAMESPACE})"
        )


def _reset_load(environment: LocalEnvironment) -> None:
    """The fleet back at its normal load, whatever phase the scenario stopped in."""
    try:
        with environment.api_client() as api:
            play(api, Phase("normal", 1.0))
    except READ_ERRORS as error:
        console.print(f"[yellow]could not reset the fleet's load annotations: {error}[/yellow]")
