"""The node simulator process: register the nodes, keep them alive, watch their pods, serve
metrics. `simulator_command` is the command line that starts it as a process of its own."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from prometheus_client.registry import CollectorRegistry

from bridgescale import kube
from bridgescale.localcluster.processes import ManagedProcess, ProcessSupervisor
from bridgescale.simulator import control, dra
from bridgescale.simulator.api import RawApi
from bridgescale.simulator.kubelet import PodEvent, PodWorker
from bridgescale.simulator.metrics import (
    ContainerState,
    GpuState,
    SimulatorCollector,
    kube_state_amounts,
)
from bridgescale.simulator.nodes import (
    LEASE_NAMESPACE,
    SimulatedNode,
    lease_body,
    node_body,
    node_conditions,
    now_micro,
    simulated_nodes,
)
from bridgescale.simulator.pods import PodRecord
from bridgescale.simulator.resources import Body
from bridgescale.simulator.settings import SimulatorSettings

logger = logging.getLogger(__name__)

SIMULATOR_PROCESS = "node-simulator"
BOUND_PODS = "spec.nodeName!="
WATCH_SECONDS = 300
GONE = 410


def simulator_command(kubeconfig: Path, **flags: Any) -> list[str]:
    """The command line that runs the simulator, e.g. for `ProcessSupervisor.start`; `flags`
    are settings by name (`nodes=20` becomes `--nodes 20`)."""
    command = [sys.executable, "-m", "bridgescale.simulator", "--kubeconfig", str(kubeconfig)]
    for name, value in flags.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


class SimulatorNotReady(RuntimeError):
    """The simulated nodes did not get Ready; the message names the simulator's log."""


def start_simulator(
    supervisor: ProcessSupervisor,
    api: client.ApiClient,
    kubeconfig: Path,
    timeout: float = 60.0,
    **flags: Any,
) -> ManagedProcess:
    """Start the simulator as the process `node-simulator` and return once its nodes are
    Ready. `flags` are settings by name, as for `simulator_command`."""
    names = [node.name for node in simulated_nodes(SimulatorSettings(**flags))]
    process = supervisor.start(SIMULATOR_PROCESS, simulator_command(kubeconfig, **flags))
    deadline = time.monotonic() + timeout
    while not nodes_ready(api, names):
        if time.monotonic() > deadline or not process.is_running():
            raise SimulatorNotReady(f"the simulated nodes did not get Ready; see {process.log}")
        time.sleep(0.5)
    return process


class Simulator:
    def __init__(self, settings: SimulatorSettings, api: client.ApiClient) -> None:
        self.settings = settings
        self.nodes = simulated_nodes(settings)
        self._api = RawApi(api)
        self.worker = PodWorker(self._api, settings, self.nodes)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Register the nodes and their GPUs, then run the kubelet threads."""
        registered = [self._register(node) for node in self.nodes]
        self._publish_devices(registered)
        if self.settings.metrics_port:
            self.serve_metrics(self.settings.metrics_port)
        writers = [
            (f"status-writer-{i}", self.worker.status.run)
            for i in range(self.settings.status_writers)
        ]
        for name, target in (
            ("pod-worker", self.worker.run),
            ("pod-watch", self._watch_pods),
            ("node-watch", self._watch_nodes),
            ("heartbeat", self._heartbeat),
            *writers,
        ):
            thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("ready: %d nodes", len(self.nodes))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    # Nodes

    def _register(self, node: SimulatedNode) -> Body:
        body = node_body(node)
        try:
            self._api.create_node(body)
        except kube.Conflict:
            self._api.patch_node(node.name, {"metadata": body["metadata"]})
        registered = self._api.patch_node_status(node.name, {"status": body["status"]})
        self._ensure_lease(registered)
        return registered

    def _ensure_lease(self, node: Body) -> None:
        lease = lease_body(node, self.settings.lease_seconds)
        try:
            self._api.create_lease(LEASE_NAMESPACE, lease)
        except kube.Conflict:
            self._renew_lease(node["metadata"]["name"])

    def _renew_lease(self, name: str) -> None:
        spec = {"holderIdentity": name, "renewTime": now_micro()}
        self._api.patch_lease(name, LEASE_NAMESPACE, {"spec": spec})

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew each node's Lease every quarter of its duration, and its Ready condition
        every `node_status_seconds`, as the kubelet does."""
        last_status = time.monotonic()
        while not stop.wait(self.settings.lease_seconds / 4):
            report = time.monotonic() - last_status >= self.settings.node_status_seconds
            for node in self.nodes:
                try:
                    self._beat(node, report)
                except kube.NotFound:
                    logger.warning("node %s was deleted; registering it again", node.name)
                    self._publish_devices([self._register(node)])
                except kube.KubeError as error:
                    logger.warning("heartbeat of %s failed: %s", node.name, error)
            if report:
                last_status = time.monotonic()

    def _beat(self, node: SimulatedNode, report_status: bool) -> None:
        self._renew_lease(node.name)
        if report_status:
            conditions = [
                {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in node_conditions()
            ]
            self._api.patch_node_status(node.name, {"status": {"conditions": conditions}})

    def _publish_devices(self, registered: Sequence[Body]) -> None:
        for device_class in dra.device_classes():
            # Published by an earlier run: the classes never change.
            with contextlib.suppress(kube.Conflict):
                self._api.create_device_class(device_class)
        by_name = {node["metadata"]["name"]: node for node in registered}
        for node in self.nodes:
            if node.name in by_name:
                for body in dra.resource_slices(node, by_name[node.name]):
                    self._api.put_resource_slice(body)

    def _watch_nodes(self, stop: threading.Event) -> None:
        """Keep the worker's view of each simulated Node's allocatable, as the kubelet's
        informer does."""
        ListWatch(self._api.list_nodes, self._api.core.list_node, self._node_seen).run(stop)

    def _node_seen(self, kind: str, node: Body) -> None:
        name = node["metadata"]["name"]
        if name in self.worker.nodes:
            allocatable = node.get("status", {}).get("allocatable") or {}
            self.worker.node_seen(name, None if kind == "DELETED" else allocatable)

    # Pods

    def _watch_pods(self, stop: threading.Event) -> None:
        """Pass every bound pod's changes to the worker; after a new listing, a pod the
        worker knows that is no longer listed is passed on as deleted."""
        ListWatch(
            self._api.list_bound_pods,
            self._api.core.list_pod_for_all_namespaces,
            lambda kind, pod: self.worker.events.put(PodEvent(kind, pod)),
            on_listed=self._forget_unlisted,
            field_selector=BOUND_PODS,
        ).run(stop)

    def _forget_unlisted(self, listed: set[str]) -> None:
        with self.worker.lock:
            vanished = [r.body for uid, r in self.worker.pods.items() if uid not in listed]
        for pod in vanished:
            self.worker.events.put(PodEvent("DELETED", pod))

    # Metrics

    def serve_metrics(self, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SimulatorCollector(self.container_states))
        control.serve(self.settings.metrics_address, port, registry, self.worker.report_health)
        logger.info(
            "metrics on http://%s:%d/metrics, device faults on %s",
            self.settings.metrics_address,
            port,
            control.DEVICE_HEALTH_PATH,
        )

    def container_states(self) -> list[ContainerState]:
        with self.worker.lock:
            return [
                state
                for record in self.worker.snapshot()
                for state in _container_states(self.worker, record)
            ]


def _container_states(worker: PodWorker, record: PodRecord) -> list[ContainerState]:
    states = []
    for resources in record.actual.containers:
        if not resources.runs:
            continue
        runtime = record.containers[resources.name]
        last = runtime.last_termination
        states.append(
            ContainerState(
                namespace=record.namespace,
                pod=record.name,
                uid=record.uid,
                container=resources.name,
                node=record.node,
                image=runtime.image,
                owner=record.owner,
                requests=kube_state_amounts(resources.requests),
                limits=kube_state_amounts(resources.limits),
                cpu_seconds=runtime.cpu_seconds,
                working_set_bytes=runtime.working_set_bytes,
                periods=runtime.periods,
                throttled_periods=runtime.throttled_periods,
                oom_events=runtime.oom_events,
                restarts=runtime.restart_count,
                last_terminated_reason=last.reason if last else None,
                gpu_batch_failures=runtime.gpu_batch_failures,
                gpus=tuple(
                    GpuState(
                        uuid=f"{device.pool}/{device.device}",
                        device=device.device,
                        profile=device.profile,
                        capacity_bytes=device.memory_bytes,
                        used_bytes=runtime.gpu_memory_bytes,
                    )
                    for device in worker.container_devices(record, resources.name)
                ),
            )
        )
    return states


class ListWatch:
    """List the objects, then watch them from the listing's version, as an informer does;
    list again when the watch expires or fails. Each object goes to `seen(kind, object)`
    (ADDED for a listed one), the uids of a listing to `on_listed`."""

    def __init__(
        self,
        listing: Callable[[], Body],
        watched: Callable[..., Any],
        seen: Callable[[str, Body], None],
        *,
        on_listed: Callable[[set[str]], None] | None = None,
        field_selector: str | None = None,
    ) -> None:
        self._listing, self._watched, self._seen = listing, watched, seen
        self._on_listed = on_listed
        self._field_selector = field_selector

    def run(self, stop: threading.Event) -> None:
        version: str | None = None
        while not stop.is_set():
            try:
                version = self._stream(version) if version else self._list()
            except kube.KubeError as error:
                logger.warning("watch failed (%s); listing again", error)
                version = None
                stop.wait(1.0)

    def _list(self) -> str:
        listing = self._listing()
        for item in listing["items"]:
            self._seen("ADDED", item)
        if self._on_listed is not None:
            self._on_listed({item["metadata"]["uid"] for item in listing["items"]})
        version: str = listing["metadata"]["resourceVersion"]
        return version

    def _stream(self, version: str) -> str | None:
        """Follow the watch from `version`; the version to go on from, None to list again."""
        selector = {"field_selector": self._field_selector} if self._field_selector else {}
        events = watch.Watch()  # type: ignore[no-untyped-call]
        with kube.api_errors():
            for event in events.stream(  # type: ignore[no-untyped-call]
                self._watched,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                deserialize=False,
                **selector,
            ):
                item: Body = event["object"]
                if event["type"] == "ERROR":
                    return None if item.get("code") == GONE else version
                version = item["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self._seen(event["type"], item)
        return version


def nodes_ready(api: client.ApiClient, names: Sequence[str]) -> bool:
    """Whether every named node reports Ready: the simulator's readiness."""
    ready = set()
    for node in RawApi(api).list_nodes()["items"]:
        conditions = node.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ready.add(node["metadata"]["name"])
    return set(names) <= ready
