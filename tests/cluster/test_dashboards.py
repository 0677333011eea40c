"""Every panel of the Grafana dashboards returns data in the e2e environment: the local cluster
with the node simulator running the demo fleet (scaled down) in an opted-in namespace, a real
Prometheus holding its backfilled history and scraping the simulator, and the recommender and
the updater running as processes with their deploy/ service accounts and their metrics
scraped under the job names `bridgescale demo` uses.

The template variables are resolved as Grafana resolves them (`label_values` through the
labels API); every target is then evaluated as an instant query, and its series counted."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster import backfill, fleet
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.processes import ProcessSupervisor
from bridgescale.localcluster.prometheus import PrometheusServer, ScrapeTarget
from bridgescale.localcluster.settings import find_project_root

from .conftest import SIMULATOR_METRICS_PORT, TEST_PORT_BASE
from .updater_support import UPDATER_ACCOUNT, UPDATER_NAMESPACE, apply_updater_rbac
from .waiting import eventually

Json = dict[str, Any]
ROOT = find_project_root(Path(__file__))
PROMETHEUS_PORT = TEST_PORT_BASE + 30
RECOMMENDER_PORT = TEST_PORT_BASE + 31
UPDATER_PORT = TEST_PORT_BASE + 32
SCRAPE_SECONDS = 5
# What Grafana's $__rate_interval comes to here: several scrapes wide.
RATE_INTERVAL = "1m"
SUBQUERY_STEP_SECONDS = 300  # the dashboards' `[1d:5m]`
HISTORY_HOURS = 3  # more than the recommender's minimum span, so every container is recommended
# The workload chosen on the per-workload dashboard: the one with cpu, memory and a GPU claim.
GPU_WORKLOAD = "pointcloud"
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _query(prometheus: PrometheusServer, path: str, **parameters: str) -> Any:
    url = f"{prometheus.url}{path}?{urllib.parse.urlencode(parameters)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _series(prometheus: PrometheusServer, expr: str) -> list[Json]:
    found: list[Json] = _query(prometheus, "/api/v1/query", query=expr)["result"]
    return found


def _count(prometheus: PrometheusServer, expr: str) -> tuple[int, int] | str:
    """How many series `expr` returns now and how many of them are numbers (a quantile of no
    observations is NaN), or Prometheus's reason for refusing the query."""
    try:
        found = _series(prometheus, expr)
    except urllib.error.HTTPError as error:
        return f"invalid: {json.load(error).get('error')}"
    return len(found), sum(series["value"][1] != "NaN" for series in found)


def _relay(namespace: str) -> Json:
    """A bridge whose router and telemetry sidecar share pod-level resources (an envelope):
    the router sets only its own requests, the sidecar nothing."""
    template = fleet.bridge_pod("relay-bridge", 0.25)
    router, telemetry = template["spec"]["containers"]
    router["resources"] = {"requests": {"cpu": "250m", "memory": "768Mi"}}
    del telemetry["resources"]
    template["spec"]["resources"] = {
        "requests": {"cpu": "500m", "memory": "1536Mi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "relay-bridge", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "relay-bridge"}},
            "template": template,
        },
    }


@pytest.fixture(scope="module")
def fleet_namespace(api: client.ApiClient, crds: list[str], simulator: list[str]) -> Iterator[str]:
    """The demo fleet at a quarter of its size, Running in an opted-in namespace."""
    namespace = f"dash-{uuid.uuid4().hex[:6]}"
    kube.apply(api, [*fleet.manifests(namespace, scale=0.25), _relay(namespace)])
    core = client.CoreV1Api(api)

    def running() -> bool:
        pods = core.list_namespaced_pod(namespace).items
        return len(pods) == 6 and all(p.status.phase == "Running" for p in pods)

    eventually(running, timeout=180, what=f"the fleet in {namespace} to run")
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def prometheus(
    api: client.ApiClient, fleet_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A Prometheus of this module's own: the fleet's history backfilled, then scraping the
    simulator, the recommender and the updater."""
    folder = tmp_path_factory.mktemp("dashboards")
    supervisor = ProcessSupervisor(folder)
    server = PrometheusServer(folder, supervisor, PROMETHEUS_PORT, SCRAPE_SECONDS)
    simulator = ScrapeTarget("node-simulator", f"127.0.0.1:{SIMULATOR_METRICS_PORT}")
    end = time.time() - 60
    server.backfill(
        backfill.fleet_history(
            api, [fleet_namespace], end - HISTORY_HOURS * 3600, end, target=simulator.labels
        )
    )
    for target in (
        simulator,
        ScrapeTarget("bridgescale-recommender", f"127.0.0.1:{RECOMMENDER_PORT}"),
        ScrapeTarget("bridgescale-updater", f"127.0.0.1:{UPDATER_PORT}"),
    ):
        server.register(target)
    server.start()
    yield server
    supervisor.stop_all(timeout=10)


@pytest.fixture(scope="module")
def services(
    local_cluster: LocalEnvironment,
    api: client.ApiClient,
    prometheus: PrometheusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """The recommender and the updater as processes, each as its deploy/ service account."""
    folder = tmp_path_factory.mktemp("services")
    kube.apply(
        api,
        kube.load_manifests(
            ROOT / "deploy/system/namespace.yaml", ROOT / "deploy/recommender/rbac.yaml"
        ),
    )
    apply_updater_rbac(api)
    recommender_kubeconfig = local_cluster.mint_kubeconfig(
        "bridgescale-system", "bridgescale-recommender", folder / "recommender.yaml"
    )
    updater_kubeconfig = local_cluster.mint_kubeconfig(
        UPDATER_NAMESPACE, UPDATER_ACCOUNT, folder / "updater.yaml"
    )
    supervisor = ProcessSupervisor(folder)
    bridgescale = [sys.executable, "-m", "bridgescale", "--log-format", "json"]
    supervisor.start(
        "recommender",
        [
            *bridgescale,
            "recommender",
            "--kubeconfig", str(recommender_kubeconfig),
            "--prometheus-url", prometheus.url,
            "--port", str(RECOMMENDER_PORT),
            "--interval", "10",
            "--no-leader-election",
        ],
    )  # fmt: skip
    supervisor.start(
        "updater",
        [
            *bridgescale,
            "updater",
            "--kubeconfig", str(updater_kubeconfig),
            "--metrics-port", str(UPDATER_PORT),
            "--no-webhook",
            "--lease-namespace", "",
            "--usage-metrics-url", f"http://127.0.0.1:{SIMULATOR_METRICS_PORT}/metrics",
        ],
        env={**os.environ, "BRIDGESCALE_UPDATER_RESYNC_SECONDS": "5"},
    )  # fmt: skip
    yield
    for name in ("updater", "recommender"):
        log = supervisor.logs_dir / f"{name}.log"
        if log.is_file():
            print(f"--- last lines of the {name} log", *log.read_text().splitlines()[-5:], sep="\n")
    supervisor.stop_all(timeout=15)


def _scraped(prometheus: PrometheusServer, namespace: str) -> bool:
    """Each job scraped several times since the recommender published for the namespace."""
    for job in ("node-simulator", "bridgescale-recommender", "bridgescale-updater"):
        if not _series(prometheus, f'count_over_time(up{{job="{job}"}}[{RATE_INTERVAL}]) >= 4'):
            return False
        if not _series(prometheus, f'min_over_time(up{{job="{job}"}}[{RATE_INTERVAL}]) == 1'):
            return False
    recommended = f'bridgescale_workload_pod_info{{namespace="{namespace}"}}[{RATE_INTERVAL}]'
    return len(_series(prometheus, f"count_over_time({recommended}) >= 4")) == 6


def _dashboards() -> dict[str, Json]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    }


def _substitute(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "__rate_interval":
            return RATE_INTERVAL
        return values[name]

    return VARIABLE.sub(value, text)


def _resolve(prometheus: PrometheusServer, board: Json, wanted: dict[str, str]) -> dict[str, str]:
    """Each variable's values as Grafana would list them; the one in `wanted` (which must be
    listed) or, for a variable with All, the All regex."""
    values: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = LABEL_VALUES.match(variable["definition"])
        assert found, variable["definition"]
        selector = _substitute(found["selector"], values)
        listed = _query(
            prometheus, f"/api/v1/label/{found['label']}/values", **{"match[]": selector}
        )
        name = variable["name"]
        assert listed, f"variable {name} of {board['uid']} lists nothing"
        if name in wanted:
            assert wanted[name] in listed, (name, listed)
            values[name] = wanted[name]
        elif variable["includeAll"]:
            values[name] = variable["allValue"]
        else:
            values[name] = listed[0]
    return values


def test_every_panel_query_returns_data(
    prometheus: PrometheusServer,
    services: None,
    fleet_namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    eventually(
        lambda: _scraped(prometheus, fleet_namespace),
        timeout=300,
        what="Prometheus to scrape the simulator, the recommender and the updater",
    )
    wanted = {"namespace": fleet_namespace, "workload": GPU_WORKLOAD}
    # Panels over a subquery (`[1d:5m]`) evaluate at 5-minute marks: samples since the last
    # mark show there only after the next one, so the evaluation is repeated for up to a step.
    started = time.monotonic()
    rows, empty = _evaluate(prometheus, wanted)
    while empty and time.monotonic() - started < SUBQUERY_STEP_SECONDS + 30:
        time.sleep(15)
        rows, empty = _evaluate(prometheus, wanted)
    with capsys.disabled():
        print(f"\n{'dashboard':<28} {'panel':<44} {'ref':<4} series numbers")
        for name, title, ref, shown in rows:
            print(f"{name:<28} {title:<44} {ref:<4} {shown}")
        print(f"(all with data after {time.monotonic() - started:.0f} s)" if not empty else "")
    assert len(rows) >= 30
    assert not empty, "panels invalid or without data:\n" + "\n".join(empty)


def _evaluate(
    prometheus: PrometheusServer, wanted: dict[str, str]
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Every target of every panel as Grafana would send it: (dashboard, panel, ref, counts)
    rows, and the targets without data."""
    rows, empty = [], []
    for name, board in _dashboards().items():
        values = _resolve(prometheus, board, wanted)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = _substitute(target["expr"], values)
                count = _count(prometheus, expr)
                shown = count if isinstance(count, str) else f"{count[0]:>6} {count[1]:>7}"
                rows.append((name, panel["title"], target["refId"], shown))
                if isinstance(count, str) or count[0] == 0:
                    empty.append(f"{name} / {panel['title']} / {target['refId']}: {count}: {expr}")
    return rows, empty
