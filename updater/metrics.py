"""The updater's Prometheus metrics, in a registry the caller owns (one per test).

Labelled counters start at 0 for every value their label can take, so a dashboard sees a flat
line rather than no data until the first event."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridgescale.updater.apply import ResizeResult
from bridgescale.updater.decide import RecreateReason, ResizeState

SETTLED = "Settled"  # a resize the kubelet has applied, counted once it reports so
RESIZE_RESULTS = (*(result.value for result in ResizeResult), SETTLED)
PENDING_STATES = (
    ResizeState.DEFERRED,
    ResizeState.INFEASIBLE,
    ResizeState.IN_PROGRESS,
    ResizeState.ERROR,
)


class UpdaterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.resizes = Counter(
            "bridgescale_updater_resizes",
            "Resizes of pods/resize, by result: " + ", ".join(RESIZE_RESULTS) + ".",
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
        self.unfinished = Gauge(
            "bridgescale_updater_unfinished_resizes",
            "Pods whose last resize the kubelet has not finished, by namespace and state: "
            "Deferred, Infeasible, InProgress, Error. Set each pass.",
            ["namespace", "state"],
            registry=registry,
        )
        for result in RESIZE_RESULTS:
            self.resizes.labels(result)
        for reason in RecreateReason:
            self.recreations.labels(reason.value)

    def count_unfinished(self, states: Mapping[str, Iterable[ResizeState]]) -> None:
        """Set the gauge from one pass's view: each namespace's pods' resize states. Namespaces
        no longer opted in lose their series."""
        self.unfinished.clear()
        for namespace, found in states.items():
            tally = Tally(found)
            for state in PENDING_STATES:
                self.unfinished.labels(namespace, state.value).set(tally[state])
