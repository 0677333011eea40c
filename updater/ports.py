"""What the updater needs from the world, as protocols: the kube layer implements `Cluster`
against the API server; usage comes from Prometheus. The updater itself imports neither."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bridgescale.updater.placement import WorkloadKey
from bridgescale.updater.sizing import Usage

RawObject = dict[str, Any]
RefusalKind = Literal[
    "NotFound", "Conflict", "Forbidden", "Invalid", "TooManyRequests", "Unavailable", "KubeError"
]


@dataclass(frozen=True)
class Refused:
    """An expected refusal of a write, as a value: the kube error class's name and the API
    server's message (a 409 to retry, a budget that forbids an eviction, a 422 ...)."""

    kind: RefusalKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class SavedPod:
    """A bare pod's manifest, kept in the API server while the updater recreates it."""

    namespace: str
    name: str
    uid: str  # the pod it was saved from
    manifest: RawObject


class Cluster(Protocol):
    """The API server, as the updater uses it. Writes return `Refused` for the answers the
    updater expects; anything else raises."""

    def opted_in_namespaces(self) -> list[str]: ...

    def list_pods(self, namespace: str) -> list[RawObject]: ...

    def get_pod(self, namespace: str, name: str) -> RawObject | None: ...

    def resize_pod(self, namespace: str, name: str, patch: RawObject) -> RawObject | Refused: ...

    def evict_pod(self, namespace: str, name: str, uid: str) -> Refused | None: ...

    def create_pod(self, namespace: str, body: RawObject) -> RawObject | Refused: ...

    def list_nodes(self) -> list[RawObject]: ...

    def all_pods(self) -> list[RawObject]: ...

    def list_recommendations(self, namespace: str) -> list[RawObject]: ...

    def workload_annotations(self, namespace: str, kind: str, name: str) -> Mapping[str, str]: ...

    def claim_templates(self, workload: WorkloadKey) -> Mapping[str, str]:
        """Pod claim name -> the ResourceClaimTemplate new pods of `workload` should use."""
        ...

    def claim_templates_in(self, namespace: str) -> dict[str, RawObject]:
        """The namespace's ResourceClaimTemplates by name."""
        ...

    def create_claim_template(self, namespace: str, body: RawObject) -> str | Refused:
        """The created template's name."""
        ...

    def delete_claim_template(self, namespace: str, name: str) -> None: ...

    def list_slices(self) -> list[RawObject]: ...

    def list_claims(self) -> list[RawObject]: ...

    def list_device_taint_rules(self) -> list[RawObject]: ...

    def workload_exists(self, namespace: str, kind: str, name: str) -> bool: ...

    def save_pod(self, namespace: str, name: str, uid: str, manifest: RawObject) -> None: ...

    def saved_pods(self, namespace: str) -> list[SavedPod]: ...

    def forget_pod(self, namespace: str, name: str) -> None: ...

    def emit(
        self, regarding: Mapping[str, str], reason: str, note: str, *, warning: bool = False
    ) -> None: ...


class UsageSource(Protocol):
    """Recent usage per container of a pod, keyed by container name; `refresh` once a pass."""

    def refresh(self) -> None: ...

    def usage(self, namespace: str, pod: str) -> Mapping[str, Usage]: ...


class NoUsage:
    """No usage known: memory downscales are bounded by the step limit only."""

    def refresh(self) -> None:
        pass

    def usage(self, namespace: str, pod: str) -> Mapping[str, Usage]:
        return {}
