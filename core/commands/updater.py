"""`bridgescale updater`: apply recommendations to running pods (resize in place, recreate when
that cannot work) and serve the admission webhook that sizes new pods."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, start_http_server

from bridgescale import kube
from bridgescale.history import History, PrometheusSettings, PrometheusUnavailable
from bridgescale.kube import admission
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.policy import parse_duration
from bridgescale.updater.metrics import UpdaterMetrics
from bridgescale.updater.reconcile import Action, Reconciler
from bridgescale.updater.settings import UpdaterSettings
from bridgescale.updater.usage import PeakWindow, ScrapedUsage
from bridgescale.updater.webhook import WebhookServer

logger = logging.getLogger("bridgescale.updater")
LEASE = "bridgescale-updater"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "updater", help="resize pods in place from their recommendations; recreate as a fallback"
    )
    parser.add_argument("--once", action="store_true", help="one pass; wait for it to settle")
    parser.add_argument("--dry-run", action="store_true", help="decide and report, write nothing")
    parser.add_argument(
        "--deferral-timeout",
        type=parse_duration,
        help="how long a Deferred resize may wait before the pod is recreated (default 5m)",
    )
    parser.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or in-cluster")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics (0: off)")
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104
        help="address /metrics is served on",
    )
    parser.add_argument(
        "--webhook",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the admission webhook that sizes new pods, and register it",
    )
    parser.add_argument("--webhook-port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--webhook-url",
        help="the URL the API server calls; when unset, the webhook is registered on loopback "
        "at --webhook-port (outside a cluster, as against `bridgescale dev up`)",
    )
    parser.add_argument(
        "--usage-metrics-url",
        help="a cAdvisor / kube-state-metrics style /metrics to read working sets, throttling and "
        "OOM kills from (unset: memory downscales are bounded by the step limit only)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("BRIDGESCALE_PROMETHEUS_URL"),
        help="usage history: a container's recent memory peak is its highest working set over "
        "`memory_peak_window` there (default: $BRIDGESCALE_PROMETHEUS_URL; unset: the highest "
        "working set scraped since the updater started)",
    )
    parser.add_argument(
        "--lease-namespace", default="", help="leader election on a Lease there (empty: none)"
    )
    parser.set_defaults(handler=run)


def _settings(arguments: argparse.Namespace) -> UpdaterSettings:
    overrides: dict[str, Any] = {}
    if arguments.deferral_timeout is not None:
        overrides["deferral_timeout"] = arguments.deferral_timeout
    return UpdaterSettings(**overrides)


def _report(actions: list[Action]) -> None:
    for action in actions:
        if action.decision != "Skip":
            print(f"{action.pod}\t{action.workload}\t{action.decision}\t{action.result}")


def _serve_webhook(arguments: argparse.Namespace, api: Any) -> WebhookServer:
    """Serve the webhook and register it; outside a cluster, on loopback."""
    host = urlsplit(arguments.webhook_url).hostname if arguments.webhook_url else None
    hosts = (host, "127.0.0.1") if host else ("127.0.0.1", "localhost")
    bind = "0.0.0.0" if arguments.webhook_url else "127.0.0.1"  # noqa: S104
    server = WebhookServer(KubeCluster(api), port=arguments.webhook_port, host=bind, hosts=hosts)
    server.start()
    url = arguments.webhook_url or f"https://127.0.0.1:{server.port}/mutate"
    admission.register_webhook(api, url, server.ca_bundle)
    logger.info("admission webhook serving on port %d, registered at %s", server.port, url)
    return server


def peak_window(url: str, settings: UpdaterSettings) -> PeakWindow:
    """Recent memory peaks from Prometheus; None (logged) while it does not answer."""
    history = History(PrometheusSettings(url=url, retries=1))  # a pass should not stall long
    window = int(settings.memory_peak_window.total_seconds())

    def peaks(namespace: str) -> dict[tuple[str, str], float] | None:
        try:
            return history.memory_peaks(namespace, window)
        except PrometheusUnavailable as error:
            logger.warning("namespace %s: memory downscales wait: %s", namespace, error)
            return None

    return peaks


def run(arguments: argparse.Namespace) -> int:
    settings = _settings(arguments)
    if arguments.metrics_port:
        start_http_server(arguments.metrics_port, addr=arguments.metrics_address)
    metrics = UpdaterMetrics(REGISTRY)
    identity = f"{socket.gethostname()}-{os.getpid()}"
    with kube.new_client(arguments.kubeconfig) as api:
        webhook = None
        if arguments.webhook and not arguments.dry_run:
            webhook = _serve_webhook(arguments, api)
        cluster = KubeCluster(api, instance=identity)
        usage = None
        if arguments.usage_metrics_url:
            peaks = (
                peak_window(arguments.prometheus_url, settings)
                if arguments.prometheus_url
                else None
            )
            usage = ScrapedUsage(arguments.usage_metrics_url, peak_window=peaks)
        reconciler = Reconciler(cluster, settings, metrics, usage=usage, dry_run=arguments.dry_run)
        try:
            if arguments.once:
                return _once(reconciler, settings)
            # SIGTERM (a rollout, `kubectl delete`) unwinds through the `finally` blocks: the
            # Lease is given up at once rather than left to expire, and the webhook stopped.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            _loop(reconciler, settings, api, arguments.lease_namespace, identity)
        finally:
            if webhook is not None:
                webhook.stop()
    return 0


def _once(reconciler: Reconciler, settings: UpdaterSettings) -> int:
    actions = reconciler.run_pass()
    _report(actions)
    if reconciler.dry_run:
        return 0
    settled = reconciler.settle(settings.settle_timeout)
    if not settled:
        logger.warning("some actions had not settled after %s", settings.settle_timeout)
    return 0 if settled else 3


def _loop(
    reconciler: Reconciler, settings: UpdaterSettings, api: Any, lease_namespace: str,
    identity: str,
) -> None:  # fmt: skip
    from bridgescale.kube import leases, pods, recommendations  # noqa: PLC0415

    wake = threading.Event()
    pods.watch_pods_in_background(api, wake)
    recommendations.watch_recommendations_in_background(api, wake)
    try:
        _lead_and_pass(reconciler, settings, api, lease_namespace, identity, wake=wake)
    finally:
        if lease_namespace:
            with contextlib.suppress(kube.KubeError):
                leases.release(api, lease_namespace, LEASE, identity)
                logger.info("gave up the Lease %s/%s", lease_namespace, LEASE)


def _lead_and_pass(
    reconciler: Reconciler, settings: UpdaterSettings, api: Any, lease_namespace: str,
    identity: str, *, wake: threading.Event,
) -> None:  # fmt: skip
    from bridgescale.kube import leases  # noqa: PLC0415

    while True:
        # TODO(the reconciler checks the Lease before each action): the Lease is renewed once
        # per pass, so a pass longer than its 30 s could overlap with a new leader's.
        # An API server that is down or restarting fails the lease renewal as much as the pass:
        # either way this replica waits for the next round instead of exiting.
        try:
            leading = not lease_namespace or leases.acquire(
                api, lease_namespace, LEASE, identity, duration_seconds=30
            )
            if leading:
                _report(reconciler.run_pass())
        except Exception:
            logger.exception("updater pass failed; retrying at the next one")
        wake.wait(timeout=min(settings.resync_seconds, 10.0) if lease_namespace else
                  settings.resync_seconds)  # fmt: skip
        wake.clear()
