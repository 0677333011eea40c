"""`bridgescale recommender` as a service: cycles on an interval (never two at once), the
leader-election lease, and /healthz, /readyz and /metrics."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridgescale.history import PrometheusUnavailable
from bridgescale.kube import KubeError
from bridgescale.kube import leases as kube_leases
from bridgescale.recommender.cycle import CycleSummary, Engine

logger = logging.getLogger(__name__)


class Health:
    """What /healthz and /readyz answer: alive while cycles keep ending, ready after the first
    cycle (or as a standby replica)."""

    def __init__(self, interval_seconds: int) -> None:
        self._interval = interval_seconds
        self._started = time.monotonic()
        self._last_end: float | None = None
        self.ready = False
        self.leader = False

    def cycle_ended(self) -> None:
        self._last_end = time.monotonic()
        self.ready = True

    def alive(self) -> bool:
        last = self._last_end if self._last_end is not None else self._started
        return time.monotonic() - last < max(5 * self._interval, 300)


class Service:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.health = Health(self.settings.interval_seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def cycle(self) -> CycleSummary | None:
        """One cycle if this replica leads; errors are logged and counted, never raised."""
        if not self._lock.acquire(blocking=False):  # the scheduler never overlaps; be sure
            return None
        try:
            if not self._lead():
                self.health.cycle_ended()
                return None
            summary = self.engine.run_cycle()
            logger.info(
                "cycle: %d namespaces, %d workloads, %d points in %.1f s%s",
                summary.namespaces,
                summary.workloads,
                summary.points,
                summary.seconds,
                f"; Prometheus unavailable for {', '.join(summary.unavailable)}"
                if summary.unavailable
                else "",
            )
            self.health.cycle_ended()
            return summary
        except (KubeError, PrometheusUnavailable) as error:
            self.engine.metrics.errors.labels("kubernetes").inc()
            logger.warning("cycle failed, the next one retries: %s", error)
        except Exception:
            self.engine.metrics.errors.labels("unexpected").inc()
            logger.exception("cycle failed unexpectedly")
        finally:
            self._lock.release()
        return None

    def _lead(self) -> bool:
        if not self.settings.leader_election:
            return True
        leader = kube_leases.acquire(
            self.engine.api,
            self.settings.lease_namespace,
            self.settings.lease_name,
            self.settings.identity,
            self.settings.lease_duration_seconds,
        )
        if leader != self.health.leader:
            logger.info("%s", "leading: running cycles" if leader else "standby: another leads")
        self.health.leader = leader
        return leader

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT; checkpoints are saved and the lease released on the way
        out."""
        server = http_server(self)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        logger.info("serving /healthz, /readyz, /metrics on port %d", server.server_address[1])
        scheduler = BackgroundScheduler()
        scheduler.add_job(
            self.cycle,
            "interval",
            seconds=self.settings.interval_seconds,
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        scheduler.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        self._stop.wait()
        scheduler.shutdown(wait=True)
        self._shutdown()
        server.shutdown()

    def _shutdown(self) -> None:
        if self.health.leader:
            try:
                self.engine.save_checkpoints(self.engine.last_reads)
                kube_leases.release(
                    self.engine.api,
                    self.settings.lease_namespace,
                    self.settings.lease_name,
                    self.settings.identity,
                )
            except (KubeError, PrometheusUnavailable) as error:
                logger.warning("shutdown: %s", error)


def http_server(service: Service) -> ThreadingHTTPServer:
    registry = service.engine.metrics.registry
    health = service.health

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"no cycle lately\n")
            elif self.path == "/readyz":
                ok = health.ready
                self._answer(200 if ok else 503, b"ready\n" if ok else b"first cycle pending\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    settings = service.settings
    return ThreadingHTTPServer((settings.host, settings.port), Handler)
