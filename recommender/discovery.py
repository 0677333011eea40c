"""Which workload a series of usage belongs to.

History outlives pods: a rollout replaces a Deployment's pods, and last week's usage is under
pod names that no longer exist. Pod names say their owner: a Deployment's pods are
`<deployment>-<template hash>-<suffix>`, a StatefulSet's `<name>-<ordinal>`, and a bare pod is
its own workload.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridgescale.kube.workloads import Workload

_DEPLOYMENT_SUFFIX = re.compile(r"-[a-z0-9]{1,10}-[a-z0-9]{5}$")
_STATEFUL_SET_SUFFIX = re.compile(r"-\d+$")


def _owner_name(pod: str, kind: str) -> str | None:
    suffix = _DEPLOYMENT_SUFFIX if kind == "Deployment" else _STATEFUL_SET_SUFFIX
    found = suffix.search(pod)
    return pod[: found.start()] if found else None


class PodOwners:
    """Maps pod names, live or past, to the workloads of one namespace."""

    def __init__(self, workloads: Sequence[Workload]) -> None:
        self._live = {pod: w for w in workloads for pod in w.pods}
        self._by_kind_name = {(w.ref.kind, w.ref.name): w for w in workloads}

    def workload_of(self, pod: str) -> Workload | None:
        live = self._live.get(pod)
        if live is not None:
            return live
        for kind in ("Deployment", "StatefulSet"):
            name = _owner_name(pod, kind)
            if name is not None and (kind, name) in self._by_kind_name:
                return self._by_kind_name[(kind, name)]
        return None
