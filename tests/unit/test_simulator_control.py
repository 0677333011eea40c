"""The simulator's endpoint: device faults reported through `POST /devices/health`, metrics
on every other path. Exercised as a WSGI application, with no server."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from prometheus_client import CollectorRegistry

from bridgescale.simulator.control import control_app


def _call(method: str, path: str, query: str = "") -> tuple[str, str, list[tuple[str, ...]]]:
    reported: list[tuple[str, ...]] = []
    app = control_app(CollectorRegistry(), lambda *fault: reported.append(fault))
    status: list[str] = []

    def start_response(line: str, _headers: Any) -> None:
        status.append(line)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "wsgi.input": BytesIO()}  # fmt: skip
    body = b"".join(app(environ, start_response)).decode()
    return status[0], body, reported


def test_a_fault_is_reported_for_the_named_device() -> None:
    query = "node=sim-mig-0&device=gpu-0-1g-10gb-0&health=Unhealthy"
    status, body, reported = _call("POST", "/devices/health", query)
    assert status == "200 OK" and "Unhealthy" in body
    assert reported == [("sim-mig-0", "gpu-0-1g-10gb-0", "Unhealthy")]


def test_bad_requests_change_nothing() -> None:
    assert _call("GET", "/devices/health", "node=a&device=b&health=Unhealthy")[0].startswith("405")
    status, body, reported = _call("POST", "/devices/health", "node=a&device=b&health=Broken")
    assert status.startswith("400") and "Healthy" in body and reported == []


def test_other_paths_serve_metrics() -> None:
    status, _, reported = _call("GET", "/metrics")
    assert status.startswith("200") and reported == []
