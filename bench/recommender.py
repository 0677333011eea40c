"""The recommender's cycle at fleet scale: 10,000 containers with 8 days of history in a real
Prometheus.

    .venv/bin/python bench/recommender.py [--containers 10000] [--days 8] [--port-base 21540]
                                          [--reuse] [--keep-cluster] [--state-dir DIR]

It starts its own local cluster (control plane and Prometheus, state in
.bridgescale/bench-recommender/), creates bare pods of two containers each (`router` and
`telemetry`, the bridge profile) in opted-in namespaces, and backfills their history with the
simulator's own workload model: cpu, working set, OOM events, restarts and the last termination
reason, every 2 minutes, under the exporters' names and the labels the recommender's queries
use. The pods carry a scheduling gate, so they are never scheduled and no simulated node has to
run them: the recommender finds them the normal way (bare pods of opted-in namespaces) and their
history the normal way (Prometheus). The backfill is the slow part (some 240 million samples at
the default scale, through promtool): `--keep-cluster` then `--reuse` measures again without it.

Then, in a fresh process, one full cycle (no checkpoints: the initial week of history) and two
incremental cycles (the same process, each one step of new history later), as the service runs
them. One of the two is the first cycle of an hour after the hour's commit, which moves every
forecast on by an hour and so rewrites every status; the other writes only what moved. Both are
printed, and the slower is the figure. `--reuse` keeps a cluster left by `--keep-cluster` and
its pods and history. The last line is
`containers=<n> full_seconds=<s> incremental_seconds=<s> peak_rss_mb=<mb> queries=<n>`: peak
RSS is the cycle process's, queries are the requests sent to Prometheus in all three cycles.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import support
from kubernetes import client
from kubernetes.client.rest import ApiException
from support import has_default_account, wait_for

from bridgescale import kube
from bridgescale.history import History, PrometheusSettings
from bridgescale.localcluster import backfill
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.prometheus import PrometheusServer
from bridgescale.recommender.cycle import Engine
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.recommender.settings import RecommenderSettings
from bridgescale.simulator import metrics

CONTAINERS_PER_POD = 2
PODS_PER_NAMESPACE = 500
STEP = backfill.HISTORY_STEP_SECONDS
WINDOW = 7200.0  # promtool writes one block per two hours
DAY = 86400.0
GATE = "bench.bridgescale.dev/held"
TARGET = {"job": "node-simulator", "instance": "127.0.0.1:0"}
SCALES = (0.25, 0.5, 1.0, 2.0)
# The labels the recommender selects and groups by (and cAdvisor's cpu="total"); the exporters'
# others (id, image, name, uid) would double the text promtool parses, and change no query.
KEPT_LABELS = {"namespace", "pod", "container", "cpu", "reason"}


@dataclass(frozen=True)
class Layout:
    """Which pods the benchmark makes: `pods` bare pods spread over namespaces of 500."""

    pods: int

    @property
    def namespaces(self) -> list[str]:
        return [f"bench-{i:02d}" for i in range(math.ceil(self.pods / PODS_PER_NAMESPACE))]

    def pods_of(self, namespace: str) -> list[str]:
        first = self.namespaces.index(namespace) * PODS_PER_NAMESPACE
        last = min(first + PODS_PER_NAMESPACE, self.pods)
        return [f"bridge-{i:05d}" for i in range(first, last)]


def pod_body(name: str, index: int) -> dict[str, Any]:
    scale = SCALES[index % len(SCALES)]

    def container(role: str, cpu: float, memory_mib: float) -> dict[str, Any]:
        amounts = {"cpu": f"{cpu * scale:g}", "memory": f"{memory_mib * scale:g}Mi"}
        limits = {"cpu": f"{2 * cpu * scale:g}", "memory": f"{2 * memory_mib * scale:g}Mi"}
        return {
            "name": role,
            "image": f"bridgescale.dev/sim-{role}:1",
            "resources": {"requests": amounts, "limits": limits},
        }

    return {
        "metadata": {
            "name": name,
            "annotations": {
                "sim.bridgescale.dev/profile": "bridge",
                "sim.bridgescale.dev/scale": f"{scale:g}",
            },
        },
        "spec": {
            "schedulingGates": [{"name": GATE}],
            "containers": [container("router", 1, 3072), container("telemetry", 0.1, 256)],
        },
    }


def create_pods(api: client.ApiClient, layout: Layout) -> None:
    """The opted-in namespaces and their pods; what exists already is kept."""
    core = client.CoreV1Api(api)
    for namespace in layout.namespaces:
        body = {"metadata": {"name": namespace, "labels": {"bridgescale.dev/enabled": "true"}}}
        kube.apply(api, [{"apiVersion": "v1", "kind": "Namespace", **body}])
    for namespace in layout.namespaces:
        wait_for(lambda n=namespace: has_default_account(api, n), 60, f"{namespace}/default")

    def create(namespace: str, index: int, name: str) -> None:
        try:
            core.create_namespaced_pod(namespace, cast(Any, pod_body(name, index)))
        except ApiException as error:
            if error.status != 409:
                raise

    with ThreadPoolExecutor(8) as pool:
        futures = []
        for namespace in layout.namespaces:
            present = {pod.metadata.name for pod in core.list_namespaced_pod(namespace).items}
            futures += [
                pool.submit(create, namespace, int(name.rsplit("-", 1)[1]), name)
                for name in layout.pods_of(namespace)
                if name not in present
            ]
        for future in futures:
            future.result()


def container_states(api: client.ApiClient, layout: Layout) -> Iterator[tuple[Any, dict[str, str]]]:
    """Each container's identity as the exporters label it, with its pod's annotations."""
    core = client.CoreV1Api(api)
    for namespace in layout.namespaces:
        for pod in core.list_namespaced_pod(namespace).to_dict()["items"]:
            annotations = pod["metadata"].get("annotations") or {}
            for container in pod["spec"]["containers"]:
                yield backfill.container_identity(pod, container, []), annotations


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as zero-padded ASCII digits, one more axis of `width` bytes."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[..., None] // powers) % 10 + ord("0")).astype(np.uint8)


def fixed_point(values: np.ndarray, whole: int, decimals: int) -> np.ndarray:
    """Non-negative numbers as `whole` digits, a point and `decimals` digits (OpenMetrics reads
    leading zeros as any float parser does)."""
    scaled = np.round(values * 10**decimals).astype(np.int64)
    text = digits(scaled, whole + decimals)
    point = np.full((*values.shape, 1), ord("."), np.uint8)
    return np.concatenate([text[..., :whole], point, text[..., whole:]], axis=-1)


class FleetHistory:
    """Every container's replayed counters over the whole history, one row per container, and
    the name and labels of each of its series, rendered a window at a time as OpenMetrics.

    Rendering is vectorised (each line a row of bytes), as a Python loop over the 240 million
    samples of the full benchmark would take the better part of an hour.
    """

    def __init__(self, api: client.ApiClient, layout: Layout, times: np.ndarray) -> None:
        self.times = times
        self.prefixes: dict[str, list[bytes]] = {name: [] for name in FAMILIES}
        cpu, memory, kills = [], [], []
        for identity, pod_annotations in container_states(api, layout):
            replayed = backfill.replay(identity, pod_annotations, times)
            cpu.append(replayed.cpu_seconds)
            memory.append(replayed.working_set_bytes)
            kills.append(replayed.oom_events.astype(np.int64))
            # Rendered as killed once, so that the series only a kill shows has its labels too.
            killed = replace(identity, last_terminated_reason="OOMKilled")
            for sample in metrics.series([killed]):
                if sample.name in FAMILIES:
                    labels = {k: v for k, v in sample.labels.items() if k in KEPT_LABELS}
                    labels.update(TARGET)
                    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                    self.prefixes[sample.name].append(f"{sample.name}{{{text}}} ".encode())
        self.cpu, self.memory, self.kills = np.array(cpu), np.array(memory), np.array(kills)

    @property
    def containers(self) -> int:
        return len(self.cpu)

    def write_window(self, path: Path, first: int, last: int) -> int:
        """The OpenMetrics text of instants [first, last); the number of samples."""
        texts = [f" {t:.0f}\n" for t in self.times[first:last]]
        stamps = np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), -1)
        samples = 0
        with path.open("wb") as out:
            for name, (kind, documentation) in FAMILIES.items():
                family = name.removesuffix("_total") if kind == "counter" else name
                out.write(f"# HELP {family} {documentation}\n# TYPE {family} {kind}\n".encode())
                values = self._values(name, first, last)
                for rows in self._same_length(name):
                    lines = self._lines(name, rows, values[rows], stamps)
                    if name == "kube_pod_container_status_last_terminated_reason":
                        # kube-state-metrics shows the reason once a container was killed
                        lines = lines[self.kills[rows, first:last] > 0]
                    out.write(lines.tobytes())
                    samples += len(lines) if lines.ndim == 2 else lines.shape[0] * lines.shape[1]
            out.write(b"# EOF\n")
        return samples

    def _same_length(self, name: str) -> list[np.ndarray]:
        """Rows whose series prefixes have the same length, so they stack into one array."""
        lengths = np.array([len(p) for p in self.prefixes[name]])
        return [np.flatnonzero(lengths == length) for length in np.unique(lengths)]

    def _lines(
        self, name: str, rows: np.ndarray, values: np.ndarray, stamps: np.ndarray
    ) -> np.ndarray:
        """Lines of `rows` (series) by instant: one row of bytes each, series after series."""
        prefixes = np.frombuffer(b"".join(self.prefixes[name][r] for r in rows), np.uint8)
        prefixes = prefixes.reshape(len(rows), 1, -1)
        points = stamps.shape[0]
        return np.concatenate(
            [
                np.broadcast_to(prefixes, (len(rows), points, prefixes.shape[2])),
                values,
                np.broadcast_to(stamps, (len(rows), *stamps.shape)),
            ],
            axis=2,
        )

    def _values(self, name: str, first: int, last: int) -> np.ndarray:
        if name == "container_cpu_usage_seconds_total":
            return fixed_point(self.cpu[:, first:last], 9, 6)
        if name == "container_memory_working_set_bytes":
            return digits(self.memory[:, first:last].astype(np.int64), 13)
        if name == "kube_pod_container_status_last_terminated_reason":
            return np.full((self.containers, last - first, 1), ord("1"), np.uint8)
        return digits(self.kills[:, first:last], 5)  # OOM events and restarts count the same


FAMILIES = {
    name: metrics.FAMILIES[name]
    for name in (
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_oom_events_total",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_status_last_terminated_reason",
    )
}


def backfill_history(
    prometheus: PrometheusServer, api: client.ApiClient, layout: Layout, days: float, end: float
) -> tuple[int, int]:
    """`days` of history up to `end`, one file per two-hour window, promtool turning one into
    blocks while the next is written. The containers and samples written."""
    times = np.arange(end - days * DAY, end, STEP)
    history = FleetHistory(api, layout, times)
    edges = np.searchsorted(times, np.arange(math.ceil(times[0] / WINDOW) * WINDOW, end, WINDOW))
    bounds = [0, *[int(e) for e in edges if 0 < e < len(times)], len(times)]
    samples = 0
    pending: Future[None] | None = None
    with ThreadPoolExecutor(1) as promtool:
        for index, (first, last) in enumerate(itertools.pairwise(bounds)):
            path = prometheus.folder / f"backfill-{index:03d}.om"
            samples += history.write_window(path, first, last)
            if pending is not None:
                pending.result()
            pending = promtool.submit(prometheus.create_blocks, path)
        if pending is not None:
            pending.result()
    return history.containers, samples


def prepare(environment: LocalEnvironment, layout: Layout, days: float) -> None:
    """The cluster, the pods and their history in a running Prometheus."""
    environment.up()
    prometheus = environment.prometheus
    with environment.api_client() as api:
        started = time.monotonic()
        create_pods(api, layout)
        print(
            f"{layout.pods} pods in {len(layout.namespaces)} namespaces after "
            f"{time.monotonic() - started:.0f} s"
        )
        forget_recommendations(api, layout)
        ended = history_end(environment)
        kept = ended.read_text().split() if ended.exists() else []
        if kept[1:] == [f"{days:g}"] and has_history(prometheus.url, layout, float(kept[0])):
            print("history already in Prometheus")
            return
        environment.supervisor.stop("prometheus")
        shutil.rmtree(prometheus.data_dir, ignore_errors=True)  # what an unfinished run left
        started = time.monotonic()
        end = math.floor(time.time() / STEP) * STEP
        containers, samples = backfill_history(prometheus, api, layout, days, end)
        history_end(environment).write_text(f"{end:.0f} {days:g}\n")
    print(
        f"backfilled {samples} samples of {containers} containers in "
        f"{time.monotonic() - started:.0f} s"
    )
    prometheus.start(timeout=600)


def forget_recommendations(api: client.ApiClient, layout: Layout) -> None:
    """What an earlier run published and checkpointed goes, so that the full cycle starts as a
    recommender's first start does."""
    objects = client.CustomObjectsApi(api)
    for namespace in layout.namespaces:
        for plural in ("resourcerecommendations", "recommendercheckpoints"):
            objects.delete_collection_namespaced_custom_object(
                "bridgescale.dev", "v1alpha1", namespace, plural
            )


def history_end(environment: LocalEnvironment) -> Path:
    """Where the time the backfilled history ends, and its days, are kept for `--reuse`."""
    return environment.prometheus.folder / "history-end"


def has_history(url: str, layout: Layout, end: float) -> bool:
    """Whether Prometheus holds the last namespace's history up to `end`."""
    query = f'count(container_memory_working_set_bytes{{namespace="{layout.namespaces[-1]}"}})'
    history = History(PrometheusSettings(url=url))
    answer = history._connect().custom_query(query, params={"time": str(end - STEP)})
    return bool(answer) and int(float(answer[0]["value"][1])) > 0


def measure_cycles(kubeconfig: Path, prometheus_url: str, at: float) -> dict[str, Any]:
    """A full cycle at `at` and two incremental ones a step apart, as the service runs them."""
    recommender = RecommenderSettings(leader_election=False, port=0)
    recommender_metrics = RecommenderMetrics()
    history = History(
        PrometheusSettings(url=prometheus_url, timeout_seconds=300),
        on_query=recommender_metrics.prometheus_queries.inc,
    )
    now = [at]
    engine = Engine(
        kube.new_client(kubeconfig), history, recommender, recommender_metrics, clock=lambda: now[0]
    )
    full = engine.run_cycle()
    now[0] += recommender.step_seconds
    incremental = engine.run_cycle()
    now[0] += recommender.step_seconds
    following = engine.run_cycle()
    published = sum(len(r.workloads) for r in engine.last_reads)
    return {
        "full_seconds": full.seconds,
        # One of the two republishes every status: the first cycle of an hour after the hour's
        # commit moves every forecast on by an hour. The slower one is the figure.
        "incremental_seconds": max(incremental.seconds, following.seconds),
        "incremental_each": [incremental.seconds, following.seconds],
        "full_points": full.points,
        "incremental_points": incremental.points,
        "workloads": published,
        "containers": len(engine.fleet.rows),
        "queries": recommender_metrics.prometheus_queries._value.get(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=8.0)
    parser.add_argument("--port-base", type=int, default=21540)
    parser.add_argument("--reuse", action="store_true", help="keep what a previous run left")
    parser.add_argument("--state-dir", type=Path, help="default .bridgescale/bench-recommender")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster up")
    parser.add_argument("--cycles-at", type=float, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prometheus-url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.cycles_at is not None:
        print(
            json.dumps(
                measure_cycles(options.kubeconfig, options.prometheus_url, options.cycles_at)
            )
        )
        return

    layout = Layout(math.ceil(options.containers / CONTAINERS_PER_POD))
    environment = support.environment("bench-recommender", options.port_base, options.state_dir)
    if not options.reuse:
        environment.down()
        environment.clear()
    try:
        prepare(environment, layout, options.days)
        figures = run_cycles(environment)
    finally:
        if not options.keep_cluster:
            environment.down()
    print(
        f"full cycle: {figures['full_points']:.0f} points, incremental: "
        f"{figures['incremental_points']:.0f} points; {figures['workloads']:.0f} workloads"
    )
    first, second = figures["incremental_each"]
    print(f"incremental cycles: {first:.1f} s, then {second:.1f} s")
    if figures["containers"] < options.containers:
        raise SystemExit(f"only {figures['containers']:.0f} containers got a model row")
    print(
        f"containers={figures['containers']:.0f} full_seconds={figures['full_seconds']:.1f} "
        f"incremental_seconds={figures['incremental_seconds']:.1f} "
        f"peak_rss_mb={figures['peak_rss_mb']:.0f} queries={figures['queries']:.0f}"
    )


def run_cycles(environment: LocalEnvironment) -> dict[str, Any]:
    """The cycles in a process of their own, so that its peak RSS is the recommender's alone."""
    # The full cycle reads up to two steps before the history ends, the incremental ones a step
    # later each: one new point per container and resource, as the service's next cycles find.
    end = float(history_end(environment).read_text().split()[0])
    at = end - 2 * RecommenderSettings().step_seconds
    command = [
        sys.executable,
        __file__,
        "--cycles-at",
        str(at),
        "--kubeconfig",
        str(environment.admin_kubeconfig),
        "--prometheus-url",
        environment.prometheus.url,
    ]
    started = time.monotonic()
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        raise SystemExit(f"the cycles failed:\n{answer.stderr[-4000:]}")
    print(f"cycles process ran {time.monotonic() - started:.0f} s")
    return cast(dict[str, Any], json.loads(answer.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
