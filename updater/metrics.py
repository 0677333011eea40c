"""The updater's Prometheus metrics, in a registry the caller owns (one per test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class UpdaterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.resizes = Counter(
            "bridgescale_updater_resizes",
            "Resizes of pods/resize, by result: Accepted, Settled, Refused, Conflict, Reverted.",
            ["result"],
            registry=registry,
        )
        self.recreations = Counter(
            "bridgescale_updater_recreations",
            "Pods recreated (evicted, or deleted and created for bare pods), by reason.",
            ["reason"],
            registry=registry,
        )
        self.claim_swaps = Counter(
            "bridgescale_updater_claim_swaps",
            "DRA claim templates swapped for a pod's GPU memory.",
            registry=registry,
        )
        self.resize_pending = Histogram(
            "bridgescale_updater_resize_pending_seconds",
            "Time from a resize request to the kubelet reporting it applied.",
            buckets=(1, 5, 15, 30, 60, 180, 300, 900, 3600),
            registry=registry,
        )
