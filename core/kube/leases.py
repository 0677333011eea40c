"""Leader election on a coordination.k8s.io Lease: one replica of a service works, the others
wait, and a replica that stops renewing is replaced after the lease duration."""

from __future__ import annotations

import datetime as dt

from kubernetes import client

from bridgescale.kube import Conflict, NotFound, api_errors


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _expired(lease: client.V1Lease, now: dt.datetime) -> bool:
    spec = lease.spec
    if spec is None or spec.renew_time is None or spec.lease_duration_seconds is None:
        return True
    renewed: dt.datetime = spec.renew_time
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=dt.UTC)
    return bool(renewed + dt.timedelta(seconds=spec.lease_duration_seconds) < now)


def acquire(
    api: client.ApiClient, namespace: str, name: str, identity: str, duration_seconds: int
) -> bool:
    """Take or renew the lease for `identity`; False when another holder's lease still runs or
    another replica won the race."""
    coordination = client.CoordinationV1Api(api)
    now = _now()
    try:
        with api_errors():
            lease = coordination.read_namespaced_lease(name, namespace)
    except NotFound:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
            spec=client.V1LeaseSpec(
                holder_identity=identity,
                lease_duration_seconds=duration_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            with api_errors():
                coordination.create_namespaced_lease(namespace, body)
        except Conflict:
            return False
        return True
    spec = lease.spec or client.V1LeaseSpec()
    holder = spec.holder_identity
    if holder not in (identity, None, "") and not _expired(lease, now):
        return False
    if holder != identity:
        spec.acquire_time = now
        spec.lease_transitions = (spec.lease_transitions or 0) + 1
    spec.holder_identity = identity
    spec.lease_duration_seconds = duration_seconds
    spec.renew_time = now
    lease.spec = spec
    try:
        with api_errors():
            # The read resourceVersion travels with the body: a concurrent writer gets a 409.
            coordination.replace_namespaced_lease(name, namespace, lease)
    except Conflict:
        return False
    return True


def release(api: client.ApiClient, namespace: str, name: str, identity: str) -> None:
    """Give the lease up at shutdown, so another replica need not wait for it to expire."""
    coordination = client.CoordinationV1Api(api)
    try:
        with api_errors():
            lease = coordination.read_namespaced_lease(name, namespace)
            if lease.spec is None or lease.spec.holder_identity != identity:
                return
            lease.spec.holder_identity = None
            lease.spec.renew_time = None
            coordination.replace_namespaced_lease(name, namespace, lease)
    except (NotFound, Conflict):
        return
