"""Leader election for the updater on a coordination.k8s.io Lease, and the pod watch that wakes
its loop: one replica acts; the others take over when it stops renewing."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from kubernetes import client, watch

from bridgescale.kube import Conflict, NotFound, api_errors

logger = logging.getLogger("bridgescale.kube.lease")


def _expired(spec: client.V1LeaseSpec, now: dt.datetime) -> bool:
    if spec.renew_time is None or spec.lease_duration_seconds is None:
        return True
    renewed: dt.datetime = spec.renew_time
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=dt.UTC)
    return renewed + dt.timedelta(seconds=spec.lease_duration_seconds) < now


def _create(
    coordination: client.CoordinationV1Api, namespace: str, name: str, identity: str, seconds: int
) -> bool:
    now = dt.datetime.now(dt.UTC)
    spec = client.V1LeaseSpec(
        holder_identity=identity, lease_duration_seconds=seconds, acquire_time=now, renew_time=now
    )
    body = client.V1Lease(metadata=client.V1ObjectMeta(name=name, namespace=namespace), spec=spec)
    try:
        with api_errors():
            coordination.create_namespaced_lease(namespace, body)
    except Conflict:
        return False  # another replica created it first
    return True


def acquire(
    api: client.ApiClient, namespace: str, name: str, identity: str, duration_seconds: int
) -> bool:
    """Take or renew the Lease for `identity`; False while another holder's lease runs. The
    replace carries the read resourceVersion, so two replicas never both win."""
    coordination = client.CoordinationV1Api(api)
    now = dt.datetime.now(dt.UTC)
    try:
        with api_errors():
            lease = coordination.read_namespaced_lease(name, namespace)
    except NotFound:
        return _create(coordination, namespace, name, identity, duration_seconds)
    spec: client.V1LeaseSpec = lease.spec or client.V1LeaseSpec()
    if spec.holder_identity not in {identity, None} and not _expired(spec, now):
        return False
    if spec.holder_identity != identity:
        spec.acquire_time = now
        spec.lease_transitions = (spec.lease_transitions or 0) + 1
    spec.holder_identity, spec.renew_time = identity, now
    spec.lease_duration_seconds = duration_seconds
    lease.spec = spec
    try:
        with api_errors():
            coordination.replace_namespaced_lease(name, namespace, lease)
    except Conflict:
        return False
    return True


def watch_pods_in_background(api: client.ApiClient, wake: threading.Event) -> threading.Thread:
    """Set `wake` on every pod change in the cluster (the loop then makes a pass)."""

    def run() -> None:
        core = client.CoreV1Api(api)
        while True:
            try:
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    core.list_pod_for_all_namespaces, timeout_seconds=300
                )
                for _ in stream:
                    wake.set()
            except Exception:
                logger.exception("pod watch ended; starting again")
                threading.Event().wait(5)

    thread = threading.Thread(target=run, name="pod-watch", daemon=True)
    thread.start()
    return thread
