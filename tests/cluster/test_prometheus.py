"""A real Prometheus starts with days of backfilled history and serves it through its HTTP API."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from bridgescale.localcluster.processes import ProcessSupervisor
from bridgescale.localcluster.prometheus import MetricFamily, PrometheusServer, SeriesHistory

DAY = 86400.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _history(now: float, days: float, step: float) -> list[float]:
    start = now - days * DAY
    count = int(days * DAY / step)
    return [start + i * step for i in range(count)]


def test_backfilled_week_is_served(tmp_path: Path) -> None:
    now = time.time() // 60 * 60 - 120
    times = _history(now, days=7, step=60)
    working_set = MetricFamily(
        "container_memory_working_set_bytes",
        "gauge",
        "working set",
        [
            SeriesHistory(
                "container_memory_working_set_bytes",
                {"namespace": "bridges", "pod": f"bridge-{i}", "container": "router"},
                [(t, 1e9 + i * 1e8 + (t % 3600)) for t in times],
            )
            for i in range(2)
        ],
    )
    cpu = MetricFamily(
        "container_cpu_usage_seconds",
        "counter",
        "cpu seconds",
        [
            SeriesHistory(
                "container_cpu_usage_seconds",
                {"namespace": "bridges", "pod": "bridge-0", "container": "router"},
                [(t, 0.5 * (t - times[0])) for t in times],
            )
        ],
    )
    supervisor = ProcessSupervisor(tmp_path)
    server = PrometheusServer(tmp_path, supervisor, _free_port())
    try:
        started = time.monotonic()
        samples = server.backfill([working_set, cpu])
        print(f"backfilled {samples} samples in {time.monotonic() - started:.1f} s")
        assert samples == 3 * len(times)
        server.start()

        prometheus = PrometheusConnect(server.url)
        result = prometheus.custom_query_range(
            'container_memory_working_set_bytes{namespace="bridges"}',
            start_time=_datetime(times[0]),
            end_time=_datetime(now),
            step="1h",
        )
        assert {series["metric"]["pod"] for series in result} == {"bridge-0", "bridge-1"}
        stamps = [float(t) for t, _ in result[0]["values"]]
        span_days = (max(stamps) - min(stamps)) / DAY
        print(f"served span {span_days:.2f} days")
        assert span_days >= 6.9

        rate = prometheus.custom_query(
            f"rate(container_cpu_usage_seconds_total[10m] @ {now - DAY:.0f})"
        )
        assert float(rate[0]["value"][1]) == pytest.approx(0.5, rel=1e-6)
    finally:
        supervisor.stop_all(timeout=10)


def _datetime(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
