"""DRA objects for the updater's claim swaps: ResourceClaimTemplates it creates (labelled with
the workload and the pod claim they replace), the ResourceSlices that say what devices exist,
and the claims allocated from them."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from bridgescale.kube import NotFound, api_errors, listed_items
from bridgescale.updater.gpu import POD_CLAIM_LABEL, WORKLOAD_LABEL, workload_label


def _plain(api: client.ApiClient, obj: object) -> dict[str, Any]:
    return cast(dict[str, Any], api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def swapped_templates(
    api: client.ApiClient, namespace: str, kind: str, name: str
) -> dict[str, str]:
    """Pod claim name -> the newest template the updater made for it in this workload."""
    with api_errors():
        found = client.ResourceV1Api(api).list_namespaced_resource_claim_template(
            namespace,
            label_selector=f"{WORKLOAD_LABEL}={workload_label(kind, name)}",
            _preload_content=False,
        )
    newest: dict[str, tuple[str, str]] = {}
    for template in listed_items(found):
        metadata = template["metadata"]
        claim = (metadata.get("labels") or {}).get(POD_CLAIM_LABEL)
        created = str(metadata.get("creationTimestamp"))
        if claim and (claim not in newest or created > newest[claim][0]):
            newest[claim] = (created, str(metadata["name"]))
    return {claim: template for claim, (_, template) in newest.items()}


def list_templates(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    with api_errors():
        found = client.ResourceV1Api(api).list_namespaced_resource_claim_template(
            namespace, _preload_content=False
        )
    return listed_items(found)


def create_template(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> str:
    """Create a ResourceClaimTemplate (its name may be generated); the name it got."""
    with api_errors():
        created = client.ResourceV1Api(api).create_namespaced_resource_claim_template(
            namespace,
            body,  # type: ignore[arg-type]
        )
    return str(_plain(api, created)["metadata"]["name"])


def delete_template(api: client.ApiClient, namespace: str, name: str) -> None:
    try:
        with api_errors():
            client.ResourceV1Api(api).delete_namespaced_resource_claim_template(name, namespace)
    except NotFound:
        pass


def list_slices(api: client.ApiClient) -> list[dict[str, Any]]:
    with api_errors():
        return listed_items(client.ResourceV1Api(api).list_resource_slice(_preload_content=False))


def list_claims(api: client.ApiClient) -> list[dict[str, Any]]:
    with api_errors():
        found = client.ResourceV1Api(api).list_resource_claim_for_all_namespaces(
            _preload_content=False
        )
    return listed_items(found)


def list_device_taint_rules(api: client.ApiClient) -> list[dict[str, Any]]:
    """DeviceTaintRules (`resource.k8s.io/v1`, served by default since 1.37)."""
    with api_errors():
        return listed_items(
            client.ResourceV1Api(api).list_device_taint_rule(_preload_content=False)
        )
