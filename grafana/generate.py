"""Writes bridgescale's Grafana dashboards (`grafana/dashboards/*.json`) from one description.

Run `python grafana/generate.py` after changing a panel; the JSON is checked in so that it can
be imported or provisioned as is, and a unit test keeps it equal to what this script makes.
Every query uses only series that bridgescale's services and the usual exporters (cAdvisor,
kube-state-metrics, DCGM) really export; `bridgescale_workload_pod_info` joins per-pod series to
the workload that owns the pod.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]

SCHEMA_VERSION = 39  # Grafana 10.3 / 10.4
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MIB = 1048576
WIDTH, HEIGHT = 24, 8
FOLDER = Path(__file__).resolve().parent / "dashboards"


# PromQL --------------------------------------------------------------------------------------


def _join(expr: str, pods: str, labels: str = "") -> str:
    """`expr`, a per-pod series, kept only for the pods in `pods` (and given their `labels`)."""
    return f"{expr} * on (namespace, pod) group_left ({labels}) {pods}"


def _pods(filters: str) -> str:
    return f"bridgescale_workload_pod_info{{{filters}}}"


def _requested(metric: str, resource: str, container_filters: str, pods: str) -> str:
    """A kube-state-metrics amount summed over each workload's pods, per container."""
    series = f'{metric}{{{container_filters}, resource="{resource}"}}'
    joined = _join(series, pods, "kind, workload")
    return f"sum by (namespace, kind, workload, container) ({joined})"


def _gpu_claimed(container_filters: str, pods: str) -> str:
    """The memory of the GPU devices each container holds (used + free), over its pods."""
    # NOTE: on a shared GPU (consumable capacity) DCGM reports the whole device, not the
    # claim's share, so this overstates; it holds until a metric of claim capacity exists.
    used = f"DCGM_FI_DEV_FB_USED{{{container_filters}}}"
    free = f"DCGM_FI_DEV_FB_FREE{{{container_filters}}}"
    joined = _join(f"({used} + {free}) * {MIB}", pods, "kind, workload")
    return f"sum by (namespace, kind, workload, container) ({joined})"


def _targets_total(resource: str, filters: str, pods: str) -> str:
    """The recommended target times the number of pods of the workload, per container."""
    recommended = f'bridgescale_recommendation{{{filters}, bound="target", resource="{resource}"}}'
    pod_count = f"count by (namespace, kind, workload) ({pods})"
    return (
        "sum by (namespace, kind, workload, container) "
        f"({recommended} * on (namespace, kind, workload) group_left () {pod_count})"
    )


def slack(resource: str, by: str, filters: str, container_filters: str, pod_filters: str) -> str:
    """What a workload holds above its recommended target: requests (for GPU memory, the
    claimed device memory) over all its pods minus target times pods; what resizing would
    give back to the cluster."""
    pods = _pods(pod_filters)
    if resource == "gpu-memory":
        held = _gpu_claimed(container_filters, pods)
    else:
        held = _requested("kube_pod_container_resource_requests", resource, container_filters, pods)
    return f"sum by ({by}) ({held} - {_targets_total(resource, filters, pods)})"


# Panels --------------------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, table: bool = False) -> Json:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not table,
        "instant": table,
        "format": "table" if table else "time_series",
    }


def timeseries(title: str, description: str, unit: str, *targets: Json) -> Json:
    # Slack is negative when a workload asks for less than it should: only it has no floor.
    floor = {} if "slack" in title.lower() else {"min": 0}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                **floor,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0},
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": list(targets),
    }


def table(title: str, description: str, expr: str, columns: list[str], *, value: bool) -> Json:
    """An instant query as a table of `columns` (and its value, if `value`)."""
    hidden = {"Time": True, "Value": not value, "__name__": True, "job": True, "instance": True}
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": hidden,
                    "indexByName": {name: i for i, name in enumerate(columns)},
                },
            }
        ],
        "targets": [target(expr, table=True)],
    }


def model_table(filters: str) -> Json:
    return table(
        "Model per container",
        "The model that made each container's recommendation.",
        f"bridgescale_recommendation_info{{{filters}}}",
        ["namespace", "kind", "workload", "container", "model"],
        value=False,
    )


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _laid_out(items: list[Json]) -> list[Json]:
    """Ids and grid positions: rows span the width, panels fill two columns under them."""
    panels, y, column = [], 0, 0
    for number, item in enumerate(items, start=1):
        if item["type"] == "row":
            y += HEIGHT if column else 0
            panels.append({**item, "id": number, "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}})
            y, column = y + 1, 0
            continue
        half = WIDTH // 2
        position = {"h": HEIGHT, "w": half, "x": column * half, "y": y}
        refs = [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(item["targets"])]
        panels.append({**item, "id": number, "gridPos": position, "targets": refs})
        if column:
            y += HEIGHT
        column = 1 - column
    return panels


# Variables -----------------------------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def query_variable(name: str, query: str, *, every: bool = False) -> Json:
    """A variable from `label_values(...)`; with `every`, several values and All (a regex)."""
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "current": {},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "multi": every,
        "includeAll": every,
        "allValue": ".+" if every else None,
        "options": [],
        "regex": "",
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[Json], items: list[Json]
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["bridgescale"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": _laid_out(items),
    }


# Updater and recommender panels, on both dashboards -------------------------------------------

RATE = "[$__rate_interval]"


def updater_panels(namespace_filter: str) -> list[Json]:
    # NOTE: the updater's counters have no namespace or workload label, so these panels show
    # the whole cluster even on the workload dashboard; until the counters carry a bounded
    # workload label (README, Limitations).
    return [
        timeseries(
            "Resizes by result",
            "pods/resize requests the updater made per interval (all namespaces), by result: "
            "Accepted by the API server, Settled once the kubelet applied them, refused, ...",
            "short",
            target(
                f"sum by (result) (increase(bridgescale_updater_resizes_total{RATE}))", "{{result}}"
            ),
        ),
        timeseries(
            "Recreations and claim swaps",
            "Pods recreated per interval (all namespaces) by reason, and GPU claims swapped.",
            "short",
            target(
                f"sum by (reason) (increase(bridgescale_updater_recreations_total{RATE}))",
                "recreated: {{reason}}",
            ),
            target(f"sum(increase(bridgescale_updater_claim_swaps_total{RATE}))", "claim swaps"),
        ),
        timeseries(
            "Deferred and infeasible resizes",
            "Pods whose last resize the kubelet has not finished, by state, as the updater saw "
            "them on its last pass.",
            "short",
            target(
                f"sum by (state) (bridgescale_updater_unfinished_resizes{{{namespace_filter}}})",
                "{{state}}",
            ),
        ),
        timeseries(
            "Time to apply a resize (p50, p90)",
            "From the resize request to the kubelet reporting it applied (all namespaces).",
            "s",
            *(
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(bridgescale_updater_resize_pending_seconds_bucket{RATE})))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9)
            ),
        ),
    ]


# The workload dashboard ----------------------------------------------------------------------

NS = 'namespace="$namespace"'
CONTAINER = f'{NS}, container=~"$container"'
WORKLOAD = f'{NS}, workload="$workload"'
RECOMMENDED = f'{WORKLOAD}, container=~"$container"'
WORKLOAD_PODS = _pods(WORKLOAD)


def _per_pod(expr: str) -> str:
    return f"sum by (pod, container) ({_join(expr, WORKLOAD_PODS)})"


def _resource_panel(title: str, resource: str, unit: str, usage: str, description: str) -> Json:
    amounts = [
        target(_per_pod(usage), "{{pod}}/{{container}} usage"),
        target(
            f'bridgescale_recommendation{{{RECOMMENDED}, resource="{resource}"}}',
            "{{container}} {{bound}}",
        ),
    ]
    if resource == "gpu-memory":
        used = f"DCGM_FI_DEV_FB_USED{{{CONTAINER}}}"
        free = f"DCGM_FI_DEV_FB_FREE{{{CONTAINER}}}"
        amounts.append(
            target(_per_pod(f"({used} + {free}) * {MIB}"), "{{pod}}/{{container}} claimed")
        )
    else:
        for kind in ("requests", "limits"):
            series = f'kube_pod_container_resource_{kind}{{{CONTAINER}, resource="{resource}"}}'
            legend = "{{pod}}/{{container}} " + kind.removesuffix("s")
            amounts.append(target(_per_pod(series), legend))
    return timeseries(title, description, unit, *amounts)


def workload_dashboard() -> Json:
    variables = [
        query_variable("namespace", "label_values(bridgescale_workload_pod_info, namespace)"),
        query_variable(
            "workload", f"label_values(bridgescale_workload_pod_info{{{NS}}}, workload)"
        ),
        query_variable(
            "container",
            f"label_values(bridgescale_recommendation{{{WORKLOAD}}}, container)",
            every=True,
        ),
    ]
    by = "container"
    items = [
        row("Usage, recommendation and what is applied"),
        _resource_panel(
            "CPU",
            "cpu",
            "none",
            f"rate(container_cpu_usage_seconds_total{{{CONTAINER}}}{RATE})",
            "Cores used per pod, the recommendation (target and bounds) and the requests and "
            "limits the pods have now.",
        ),
        _resource_panel(
            "Memory",
            "memory",
            "bytes",
            f"container_memory_working_set_bytes{{{CONTAINER}}}",
            "Working set per pod, the recommendation and the applied requests and limits.",
        ),
        _resource_panel(
            "GPU memory",
            "gpu-memory",
            "bytes",
            f"DCGM_FI_DEV_FB_USED{{{CONTAINER}}} * {MIB}",
            "Framebuffer used per pod (DCGM), the recommendation, and the memory of the GPU "
            "devices the pod's DRA claim holds.",
        ),
        model_table(RECOMMENDED),
        row("Slack: what resizing to the recommendation would give back"),
        timeseries(
            "CPU slack",
            "Requests over all the workload's pods minus target times pods; negative: the "
            "workload asks for less than it should.",
            "none",
            target(slack("cpu", by, RECOMMENDED, CONTAINER, WORKLOAD), "{{container}}"),
        ),
        timeseries(
            "Memory and GPU memory slack",
            "As for cpu; GPU memory counts the device memory the claims hold.",
            "bytes",
            target(slack("memory", by, RECOMMENDED, CONTAINER, WORKLOAD), "{{container}} memory"),
            target(
                slack("gpu-memory", by, RECOMMENDED, CONTAINER, WORKLOAD),
                "{{container}} gpu-memory",
            ),
        ),
        row("Pressure"),
        timeseries(
            "OOM kills and restarts",
            "Out-of-memory kills (cAdvisor) and container restarts (kube-state-metrics) per "
            "interval.",
            "short",
            target(
                _per_pod(f"increase(container_oom_events_total{{{CONTAINER}}}{RATE})"),
                "{{pod}}/{{container}} OOM kills",
            ),
            target(
                _per_pod(
                    f"increase(kube_pod_container_status_restarts_total{{{CONTAINER}}}{RATE})"
                ),
                "{{pod}}/{{container}} restarts",
            ),
        ),
        timeseries(
            "CPU throttling",
            "Fraction of CFS periods in which the container was throttled (containers with a "
            "cpu limit).",
            "percentunit",
            target(
                _per_pod(
                    f"(rate(container_cpu_cfs_throttled_periods_total{{{CONTAINER}}}{RATE})"
                    f" / rate(container_cpu_cfs_periods_total{{{CONTAINER}}}{RATE}))"
                ),
                "{{pod}}/{{container}}",
            ),
        ),
        row("Updater activity"),
        *updater_panels(NS),
    ]
    return dashboard(
        "bridgescale-workload",
        "bridgescale / Workload",
        "One workload: usage against recommendation and applied requests and limits, slack, "
        "pressure, and what the updater did.",
        variables,
        items,
    )


# The overview dashboard ----------------------------------------------------------------------

NAMESPACES = 'namespace=~"$namespace"'


def _envelope_panel(resource: str, unit: str) -> Json:
    """For workloads whose pods set pod-level resources: the recommended envelope against the
    peak of the containers' summed usage and the sum of their separate peaks (what sizing each
    container on its own would have to cover), over the last day, per pod at most."""
    envelope = (
        f'bridgescale_recommendation{{{NAMESPACES}, container="", bound="target", '
        f'resource="{resource}"}}'
    )
    usage = (
        f'rate(container_cpu_usage_seconds_total{{{NAMESPACES}, container!=""}}[5m])'
        if resource == "cpu"
        else f'container_memory_working_set_bytes{{{NAMESPACES}, container!=""}}'
    )
    per_pod = "sum by (namespace, pod)"
    workloads = "max by (namespace, workload)"
    pods = _pods(NAMESPACES)
    with_envelope = f"and on (namespace, workload) {envelope}"
    sum_of_peaks = f"{per_pod} (max_over_time({usage}[1d:5m]))"
    peak_of_sum = f"max_over_time(({per_pod} ({usage}))[1d:5m])"
    return timeseries(
        f"{'CPU' if resource == 'cpu' else 'Memory'} envelope against per-container sizing",
        "Per workload with pod-level resources: the recommended envelope (target), the peak "
        "of its containers' summed usage over the last day, and the sum of each container's "
        "own peak, which per-container sizing would have to cover (the highest pod of the "
        "workload).",
        unit,
        target(f"{workloads} ({envelope})", "{{workload}} envelope target"),
        target(
            f"{workloads} ({_join(peak_of_sum, pods, 'workload')}) {with_envelope}",
            "{{workload}} peak of the sum",
        ),
        target(
            f"{workloads} ({_join(sum_of_peaks, pods, 'workload')}) {with_envelope}",
            "{{workload}} sum of the peaks",
        ),
    )


def overview_dashboard() -> Json:
    variables = [
        query_variable(
            "namespace", "label_values(bridgescale_workload_pod_info, namespace)", every=True
        )
    ]
    filters = (NAMESPACES, NAMESPACES, NAMESPACES)
    pods = _pods(NAMESPACES)
    items = [
        row("Slack: what resizing to the recommendations would give back"),
        timeseries(
            "CPU slack by namespace",
            "Requests minus recommended targets, over every recommended container's pods.",
            "none",
            target(slack("cpu", "namespace", *filters), "{{namespace}}"),
        ),
        timeseries(
            "Memory and GPU memory slack by namespace",
            "As for cpu; GPU memory counts the device memory the claims hold.",
            "bytes",
            target(slack("memory", "namespace", *filters), "{{namespace}} memory"),
            target(slack("gpu-memory", "namespace", *filters), "{{namespace}} gpu-memory"),
        ),
        table(
            "CPU slack by workload",
            "Cores requested above the recommended target, per workload, now.",
            slack("cpu", "namespace, kind, workload", *filters),
            ["namespace", "kind", "workload", "Value"],
            value=True,
        ),
        model_table(NAMESPACES),
        row("Pod envelopes (pod-level resources)"),
        *(
            _envelope_panel(resource, unit)
            for resource, unit in (("cpu", "none"), ("memory", "bytes"))
        ),
        row("Pressure"),
        timeseries(
            "OOM kills by namespace",
            "Out-of-memory kills per interval in tracked workloads (cAdvisor).",
            "short",
            target(
                "sum by (namespace) "
                f"({_join(f'increase(container_oom_events_total{{{NAMESPACES}}}{RATE})', pods)})",
                "{{namespace}}",
            ),
        ),
        timeseries(
            "CPU throttling by namespace",
            "Throttled CFS periods over all periods of tracked containers with a cpu limit.",
            "percentunit",
            target(
                "sum by (namespace) ("
                + _join(
                    f"rate(container_cpu_cfs_throttled_periods_total{{{NAMESPACES}}}{RATE})", pods
                )
                + ") / sum by (namespace) ("
                + _join(f"rate(container_cpu_cfs_periods_total{{{NAMESPACES}}}{RATE})", pods)
                + ")",
                "{{namespace}}",
            ),
        ),
        row("Updater"),
        *updater_panels(NAMESPACES),
        row("Recommender"),
        timeseries(
            "Recommender cycles",
            "How long cycles take (p90) and how long ago the last one ended.",
            "s",
            target(
                "histogram_quantile(0.9, sum by (le) "
                f"(rate(bridgescale_recommender_cycle_duration_seconds_bucket{RATE})))",
                "cycle p90",
            ),
            target(
                "time() - max(bridgescale_recommender_last_cycle_timestamp_seconds)", "since last"
            ),
        ),
        timeseries(
            "Recommender reads and errors",
            "Usage series read per interval, and errors by where they happened.",
            "short",
            target(
                f"sum(increase(bridgescale_recommender_series_read_total{RATE}))", "series read"
            ),
            target(
                f"sum by (source) (increase(bridgescale_recommender_errors_total{RATE}))",
                "errors: {{source}}",
            ),
        ),
    ]
    return dashboard(
        "bridgescale-overview",
        "bridgescale / Overview",
        "All tracked namespaces: slack, pressure, the models in use, and the activity of the "
        "recommender and the updater.",
        variables,
        items,
    )


def dashboards() -> dict[str, Json]:
    """File name: dashboard, for every dashboard bridgescale ships."""
    return {
        "bridgescale-overview.json": overview_dashboard(),
        "bridgescale-workload.json": workload_dashboard(),
    }


def render(board: Json) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, board in dashboards().items():
        (FOLDER / name).write_text(render(board))


if __name__ == "__main__":
    main()
