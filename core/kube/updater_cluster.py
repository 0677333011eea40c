"""The updater's view of the API server (`bridgescale.updater.ports.Cluster`), implemented with
the client: pods, nodes, recommendations, workload annotations, Events, and the ConfigMaps that
hold a bare pod's manifest while it is recreated."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from bridgescale.kube import (
    Conflict,
    KubeError,
    NotFound,
    api_errors,
    claims,
    pods,
    updater_events,
)
from bridgescale.updater.placement import WorkloadKey
from bridgescale.updater.ports import RawObject, RefusalKind, Refused, SavedPod

logger = logging.getLogger(__name__)

ENABLED_LABEL = "bridgescale.dev/enabled=true"
SAVED_POD_LABEL = "bridgescale.dev/saved-pod"
SAVED_PREFIX = "bridgescale-saved-pod-"
KINDS: tuple[RefusalKind, ...] = (
    "NotFound", "Conflict", "Forbidden", "Invalid", "TooManyRequests", "Unavailable"
)  # fmt: skip


def _refused(error: KubeError) -> Refused:
    name = type(error).__name__
    kind: RefusalKind = next((k for k in KINDS if k == name), "KubeError")
    return Refused(kind, error.message)


class KubeCluster:
    """`Cluster` over one API client; `instance` names this replica in its Events."""

    def __init__(self, api: client.ApiClient, instance: str = "bridgescale-updater") -> None:
        self.api = api
        self.instance = instance

    def opted_in_namespaces(self) -> list[str]:
        return pods.list_namespaces(self.api, ENABLED_LABEL)

    def list_pods(self, namespace: str) -> list[RawObject]:
        return pods.list_pods(self.api, namespace)

    def all_pods(self) -> list[RawObject]:
        return pods.list_pods(self.api)

    def list_nodes(self) -> list[RawObject]:
        return pods.list_nodes(self.api)

    def get_pod(self, namespace: str, name: str) -> RawObject | None:
        try:
            return pods.get_pod(self.api, namespace, name)
        except NotFound:
            return None

    def resize_pod(self, namespace: str, name: str, patch: RawObject) -> RawObject | Refused:
        try:
            return pods.resize_pod(self.api, namespace, name, patch)
        except KubeError as error:
            return _refused(error)

    def evict_pod(self, namespace: str, name: str, uid: str) -> Refused | None:
        try:
            pods.evict_pod(self.api, namespace, name, uid)
        except KubeError as error:
            return _refused(error)
        return None

    def create_pod(self, namespace: str, body: RawObject) -> RawObject | Refused:
        try:
            return pods.create_pod(self.api, namespace, body)
        except KubeError as error:
            return _refused(error)

    def list_recommendations(self, namespace: str) -> list[RawObject]:
        return updater_events.list_recommendations(self.api, namespace)

    def _workload(self, namespace: str, kind: str, name: str) -> RawObject | None:
        try:
            if kind == "Pod":
                return pods.get_pod(self.api, namespace, name)
            return pods.get_owner(self.api, namespace, kind, name)
        except NotFound:
            return None

    def workload_annotations(self, namespace: str, kind: str, name: str) -> Mapping[str, str]:
        found = self._workload(namespace, kind, name)
        return dict(found["metadata"].get("annotations") or {}) if found else {}

    def workload_exists(self, namespace: str, kind: str, name: str) -> bool:
        return self._workload(namespace, kind, name) is not None

    def claim_templates(self, workload: WorkloadKey) -> Mapping[str, str]:
        return claims.swapped_templates(self.api, workload.namespace, workload.kind, workload.name)

    def claim_templates_in(self, namespace: str) -> dict[str, RawObject]:
        return {t["metadata"]["name"]: t for t in claims.list_templates(self.api, namespace)}

    def create_claim_template(self, namespace: str, body: RawObject) -> str | Refused:
        try:
            return claims.create_template(self.api, namespace, body)
        except KubeError as error:
            return _refused(error)

    def delete_claim_template(self, namespace: str, name: str) -> None:
        claims.delete_template(self.api, namespace, name)

    def list_slices(self) -> list[RawObject]:
        return claims.list_slices(self.api)

    def list_claims(self) -> list[RawObject]:
        return claims.list_claims(self.api)

    def list_device_taint_rules(self) -> list[RawObject]:
        return claims.list_device_taint_rules(self.api)

    def save_pod(self, namespace: str, name: str, uid: str, manifest: RawObject) -> None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=SAVED_PREFIX + name, namespace=namespace, labels={SAVED_POD_LABEL: "true"}
            ),
            data={"pod": name, "uid": uid, "manifest": json.dumps(manifest)},
        )
        core = client.CoreV1Api(self.api)
        try:
            with api_errors():
                core.create_namespaced_config_map(namespace, body)
        except Conflict:  # saved before, by a pass that did not get to evict
            with api_errors():
                core.replace_namespaced_config_map(SAVED_PREFIX + name, namespace, body)

    def saved_pods(self, namespace: str) -> list[SavedPod]:
        with api_errors():
            found = client.CoreV1Api(self.api).list_namespaced_config_map(
                namespace, label_selector=f"{SAVED_POD_LABEL}=true"
            )
        saved = []
        for item in found.items:
            data: dict[str, Any] = item.data or {}
            manifest = json.loads(data.get("manifest", "{}"))
            saved.append(SavedPod(namespace, str(data.get("pod")), str(data.get("uid")), manifest))
        return saved

    def forget_pod(self, namespace: str, name: str) -> None:
        try:
            with api_errors():
                client.CoreV1Api(self.api).delete_namespaced_config_map(
                    SAVED_PREFIX + name, namespace
                )
        except NotFound:
            pass

    def emit(
        self, regarding: Mapping[str, str], reason: str, note: str, *, warning: bool = False
    ) -> None:
        """Record an Event; one that cannot be written (a namespace being deleted, RBAC, an API
        server that is away) is logged instead: Events are a record, never a reason to stop."""
        try:
            updater_events.emit_event(
                self.api, dict(regarding), reason=reason, note=note, warning=warning,
                instance=self.instance,
            )  # fmt: skip
        except KubeError as error:
            logger.warning(
                "event %s on %s %s/%s not recorded: %s", reason, regarding.get("kind"),
                regarding.get("namespace"), regarding.get("name"), error,
            )  # fmt: skip
