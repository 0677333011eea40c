"""The simulator's HTTP endpoint: `/metrics` for Prometheus, and a control to inject device
faults, as a GPU that starts to report ECC errors would:

    curl -X POST 'http://127.0.0.1:16450/devices/health?node=sim-mig-0&device=gpu-0-1g-10gb-0&health=Unhealthy'

The containers using the device then report it in `allocatedResourcesStatus` (KEP-4680) with
that health; `health=Healthy` ends the fault. Tainting the device is left to whoever manages the
fleet (a DeviceTaintRule), as on a real cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

HEALTH_VALUES = ("Healthy", "Unhealthy", "Unknown")  # upstream's ResourceHealthStatus
DEVICE_HEALTH_PATH = "/devices/health"

Report = Callable[[str, str, str], None]  # node, device, health
StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the simulator's log."""


def control_app(
    registry: CollectorRegistry, report: Report
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != DEVICE_HEALTH_PATH:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        status, text = _device_health(environ, report)
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [text.encode() + b"\n"]

    return app


def _device_health(environ: dict[str, Any], report: Report) -> tuple[str, str]:
    if environ.get("REQUEST_METHOD") != "POST":
        return "405 Method Not Allowed", "POST node=, device=, health="
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    node, device, health = query.get("node"), query.get("device"), query.get("health")
    if not node or not device or health not in HEALTH_VALUES:
        return "400 Bad Request", f"need node, device and health (one of {HEALTH_VALUES})"
    report(node, device, health)
    return "200 OK", f"device {device} on {node}: {health}"


def serve(address: str, port: int, registry: CollectorRegistry, report: Report) -> threading.Thread:
    """Serve metrics and the control on a daemon thread."""
    server = make_server(
        address, port, control_app(registry, report), _Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return thread
