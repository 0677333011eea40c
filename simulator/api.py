"""The simulator's calls to the API server, with JSON bodies in and out.

A kubelet handles thousands of objects it never inspects deeply; plain dicts cost far less CPU
than the client's models. Errors come out as `bridgescale.kube`'s classes.
"""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client

from bridgescale import kube

Body = dict[str, Any]


def _json(response: Any) -> Body:
    body: Body = json.loads(response.data)
    return body


def _drained(response: Any) -> None:
    """Read an answer that is not needed: an unread answer keeps its connection from going back
    to the pool, and the next request opens (and TLS-handshakes) a new one."""
    _ = response.data


class RawApi:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.resource = client.ResourceV1Api(api)
        self.leases = client.CoordinationV1Api(api)

    def create_node(self, body: Body) -> None:
        with kube.api_errors():
            _drained(self.core.create_node(cast(Any, body), _preload_content=False))

    def read_node(self, name: str) -> Body:
        with kube.api_errors():
            return _json(self.core.read_node(name, _preload_content=False))

    def patch_node(self, name: str, patch: Body) -> None:
        with kube.api_errors():
            _drained(self.core.patch_node(name, patch, _preload_content=False))

    def patch_node_status(self, name: str, patch: Body) -> Body:
        with kube.api_errors():
            return _json(self.core.patch_node_status(name, patch, _preload_content=False))

    def create_lease(self, namespace: str, body: Body) -> None:
        with kube.api_errors():
            _drained(
                self.leases.create_namespaced_lease(
                    namespace, cast(Any, body), _preload_content=False
                )
            )

    def patch_lease(self, name: str, namespace: str, patch: Body) -> None:
        with kube.api_errors():
            _drained(
                self.leases.patch_namespaced_lease(name, namespace, patch, _preload_content=False)
            )

    def create_device_class(self, body: Body) -> None:
        with kube.api_errors():
            _drained(self.resource.create_device_class(cast(Any, body), _preload_content=False))

    def put_resource_slice(self, body: Body) -> None:
        """Create the slice, or replace the one of that name."""
        name = body["metadata"]["name"]
        try:
            with kube.api_errors():
                _drained(
                    self.resource.create_resource_slice(cast(Any, body), _preload_content=False)
                )
        except kube.Conflict:
            with kube.api_errors():
                current = _json(self.resource.read_resource_slice(name, _preload_content=False))
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                _drained(
                    self.resource.replace_resource_slice(
                        name, cast(Any, body), _preload_content=False
                    )
                )

    def read_claim(self, name: str, namespace: str) -> Body:
        with kube.api_errors():
            return _json(
                self.resource.read_namespaced_resource_claim(
                    name, namespace, _preload_content=False
                )
            )

    def list_bound_pods(self) -> Body:
        with kube.api_errors():
            return _json(
                self.core.list_pod_for_all_namespaces(
                    field_selector="spec.nodeName!=", _preload_content=False
                )
            )

    def patch_pod_status(self, name: str, namespace: str, patch: Body) -> None:
        with kube.api_errors():
            _drained(
                self.core.patch_namespaced_pod_status(
                    name, namespace, patch, _preload_content=False
                )
            )

    def delete_pod_now(self, name: str, namespace: str, uid: str) -> None:
        """Delete with grace 0, only the pod of that uid."""
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        with kube.api_errors():
            _drained(
                self.core.delete_namespaced_pod(
                    name, namespace, body=cast(Any, options), _preload_content=False
                )
            )

    def list_nodes(self) -> Body:
        with kube.api_errors():
            return _json(self.core.list_node(_preload_content=False))
