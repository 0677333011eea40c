"""What the demo saw, and what it sums up to: snapshots of every bridge container over the
scenario, the summary at its end, and a chart of one bridge.

Pure: snapshots come in as plain data (the demo reads them from the API server and
Prometheus), so the counting is tested with made-up snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridgescale.quantity import Resource

OOM_KILLED = "OOMKilled"


@dataclass(frozen=True)
class ContainerView:
    """One container of one pod at one moment: what it uses, what is recommended for it, what
    the kubelet applied (pod status resources), and how often it restarted."""

    pod: str
    uid: str
    workload: str
    container: str
    used: Mapping[Resource, float] = field(default_factory=dict)
    target: Mapping[Resource, float] = field(default_factory=dict)
    requests: Mapping[Resource, float] = field(default_factory=dict)
    limits: Mapping[Resource, float] = field(default_factory=dict)
    restarts: int = 0
    last_termination: str | None = None
    gpu_devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    seconds: float  # since the scenario began
    phase: str
    containers: tuple[ContainerView, ...]


@dataclass(frozen=True)
class Slack:
    """Reserved (requests) minus used, over every container seen: cores and bytes."""

    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True)
class Summary:
    resizes: int  # in place: the same pod (uid) with other applied resources
    resized_pods: tuple[str, ...]
    recreations: int  # pods that went during the scenario (their workloads replaced them)
    restarts: int  # container restarts, in every pod seen
    restarts_of_resized: int
    oom_kills: int
    slack_before: Slack
    slack_after: Slack


def slack(snapshot: Snapshot) -> Slack:
    """Requests minus usage, summed over the snapshot's containers (usage not yet known: 0)."""
    cpu = memory = 0.0
    for view in snapshot.containers:
        cpu += view.requests.get("cpu", 0.0) - view.used.get("cpu", 0.0)
        memory += view.requests.get("memory", 0.0) - view.used.get("memory", 0.0)
    return Slack(cpu, memory)


def _applied(view: ContainerView) -> tuple[tuple[str, float], ...]:
    return tuple(sorted({**_prefixed("r", view.requests), **_prefixed("l", view.limits)}.items()))


def _prefixed(prefix: str, values: Mapping[Resource, float]) -> dict[str, float]:
    return {f"{prefix}/{resource}": value for resource, value in values.items()}


def summarize(snapshots: Sequence[Snapshot], before: Snapshot | None = None) -> Summary:
    """The scenario's outcome from its snapshots, in time order. `before` is the fleet as it
    was before bridgescale acted (else the first snapshot): the slack before."""
    if not snapshots:
        raise ValueError("no snapshots to summarize")
    resized: dict[str, int] = {}
    restarts: dict[tuple[str, str], tuple[int, int]] = {}  # first and last restart count
    oom_kills = 0
    pods: dict[str, str] = {}
    previous: dict[tuple[str, str], ContainerView] = {}
    for snapshot in snapshots:
        changed_pods = set()
        for view in snapshot.containers:
            key = (view.uid, view.container)
            pods[view.uid] = view.pod
            earlier = previous.get(key)
            first = restarts.get(key, (view.restarts, view.restarts))[0]
            restarts[key] = (first, view.restarts)
            if earlier is not None:
                if _applied(earlier) != _applied(view):
                    changed_pods.add(view.uid)
                if view.restarts > earlier.restarts and view.last_termination == OOM_KILLED:
                    oom_kills += view.restarts - earlier.restarts
            previous[key] = view
        # One resize changes a pod's containers together. TODO(count from the pods'
        # metadata.generation, which each resize bumps): two resizes of a pod between two
        # snapshots count as one.
        for uid in changed_pods:
            resized[uid] = resized.get(uid, 0) + 1
    last = {view.uid for view in snapshots[-1].containers}
    restarted = {key: after - first for key, (first, after) in restarts.items()}
    return Summary(
        resizes=sum(resized.values()),
        resized_pods=tuple(sorted(pods[uid] for uid in resized)),
        recreations=len(set(pods) - last),
        restarts=sum(restarted.values()),
        restarts_of_resized=sum(n for (uid, _), n in restarted.items() if uid in resized),
        oom_kills=oom_kills,
        slack_before=slack(before or snapshots[0]),
        slack_after=slack(snapshots[-1]),
    )


@dataclass(frozen=True)
class Trace:
    """One resource of one container of a pod (by name, across recreations) over time."""

    seconds: list[float]
    used: list[float]
    target: list[float]
    limit: list[float]


NAN = float("nan")


def trace(snapshots: Sequence[Snapshot], pod: str, container: str, resource: Resource) -> Trace:
    """Usage, target and limit of a container at each snapshot (NaN where unknown)."""
    result = Trace([], [], [], [])
    for snapshot in snapshots:
        view = next(
            (v for v in snapshot.containers if v.pod == pod and v.container == container), None
        )
        if view is None:
            continue
        result.seconds.append(snapshot.seconds)
        result.used.append(view.used.get(resource, NAN))
        result.target.append(view.target.get(resource, NAN))
        result.limit.append(view.limits.get(resource, NAN))
    return result


def phase_spans(snapshots: Sequence[Snapshot]) -> list[tuple[float, float, str]]:
    """(start, end, phase) of each run of snapshots in the same phase."""
    spans: list[tuple[float, float, str]] = []
    for snapshot in snapshots:
        if spans and spans[-1][2] == snapshot.phase:
            spans[-1] = (spans[-1][0], snapshot.seconds, snapshot.phase)
        else:
            spans.append((snapshot.seconds, snapshot.seconds, snapshot.phase))
    return spans


def chart(snapshots: Sequence[Snapshot], pod: str, container: str, path: Path) -> Path:
    """A PNG of usage vs recommendation vs limit of one container, cpu above memory, with the
    scenario's phases shaded."""
    import matplotlib  # noqa: PLC0415  (only the demo's end needs it; it is slow to import)

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, axes = pyplot.subplots(2, 1, sharex=True, figsize=(9, 6))
    panels: tuple[tuple[Resource, str, float], ...] = (
        ("cpu", "cores", 1.0),
        ("memory", "GiB", 1024.0**3),
    )
    for axis, (resource, unit, scale) in zip(axes, panels, strict=True):
        series = trace(snapshots, pod, container, resource)
        for values, label, style in (
            (series.used, "usage", "-"),
            (series.target, "recommendation (target)", "--"),
            (series.limit, "limit applied", "-."),
        ):
            axis.plot(series.seconds, [v / scale for v in values], style, label=label)
        axis.set_ylabel(f"{resource} ({unit})")
        axis.set_ylim(bottom=0)
        for index, (start, end, phase) in enumerate(phase_spans(snapshots)):
            axis.axvspan(start, end, alpha=0.08 if index % 2 else 0.0, color="grey")
            if resource == "cpu":
                axis.text(start, 1.01, phase, transform=axis.get_xaxis_transform(), fontsize=8)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_xlabel("seconds since the scenario began")
    figure.suptitle(f"{pod}/{container}: usage, recommendation and limit", y=0.99)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)
    return path
