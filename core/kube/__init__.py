"""The one layer of bridgescale that talks to the Kubernetes API.

Everything else gets plain data and a few error classes: API errors are mapped here, once, by
HTTP status, so callers can treat the expected ones (a pod that vanished, a conflict, a budget
that forbids an eviction) as outcomes rather than surprises. This module holds the client, the
errors and server-side apply; modules beside it wrap one area of the API each.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

logger = logging.getLogger(__name__)


class KubeError(Exception):
    """An error answer from the API server."""

    status: int | None = None

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object is gone."""


class Conflict(KubeError):
    """409: someone else changed the object first; re-read and retry."""


class Forbidden(KubeError):
    """403: RBAC does not allow it."""


class Invalid(KubeError):
    """422: the API server refused the change as invalid; the message says why."""


class TooManyRequests(KubeError):
    """429: throttled, or an eviction refused by a PodDisruptionBudget."""


class Unavailable(KubeError):
    """No answer, or a 5xx: the API server is down or overloaded; retry later."""


_BY_STATUS: dict[int, type[KubeError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: TooManyRequests,
}


def translate(error: ApiException) -> KubeError:
    """The bridgescale error class for an API exception, with the server's own message."""
    status = int(error.status) if error.status else None
    message = str(error.reason or "")
    if error.body:
        try:
            body: Any = json.loads(error.body)
        except (ValueError, TypeError):
            body = None
        if isinstance(body, dict) and "message" in body:
            message = str(body["message"])
        else:
            message = str(error.body)
    if status is None or status >= 500:
        return Unavailable(status, str(error.reason), message)
    return _BY_STATUS.get(status, KubeError)(status, str(error.reason), message)


@contextmanager
def api_errors() -> Iterator[None]:
    """Raise API exceptions inside the block as bridgescale's error classes; no answer at all
    (connection refused or reset, as while the API server restarts) is `Unavailable`."""
    try:
        yield
    except ApiException as error:
        raise translate(error) from error
    except urllib3.exceptions.HTTPError as error:
        raise Unavailable(None, "Unavailable", f"no answer from the API server: {error}") from error


def new_client(kubeconfig: Path | None = None) -> client.ApiClient:
    """A client from `kubeconfig`, else from $KUBECONFIG or in-cluster service account."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    try:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (config.ConfigException, OSError) as error:
        where = kubeconfig or "$KUBECONFIG (or ~/.kube/config)"
        raise KubeConfigError(f"cannot use the kubeconfig {where}: {error}") from error
    return api


class KubeConfigError(Exception):
    """No usable kubeconfig and not in a cluster: a setup error, told in one line."""


FIELD_MANAGER = "bridgescale"


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    """The objects in YAML files (several documents each), in file order."""
    objects: list[dict[str, Any]] = []
    for path in paths:
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


_DYNAMIC_CLIENTS: weakref.WeakKeyDictionary[client.ApiClient, DynamicClient] = (
    weakref.WeakKeyDictionary()
)
_DYNAMIC_LOCK = threading.Lock()


def _dynamic_client(api: client.ApiClient) -> DynamicClient:
    """One dynamic client per API client: making one reads the API's discovery documents,
    which costs more than the apply itself."""
    with _DYNAMIC_LOCK:
        dynamic = _DYNAMIC_CLIENTS.get(api)
        if dynamic is None:
            dynamic = DynamicClient(api)  # type: ignore[no-untyped-call]
            _DYNAMIC_CLIENTS[api] = dynamic
        return dynamic


def apply(
    api: client.ApiClient,
    objects: list[dict[str, Any]],
    *,
    dry_run: bool = False,
    field_manager: str = FIELD_MANAGER,
) -> list[dict[str, Any]]:
    """Server-side apply of each object, as `kubectl apply --server-side` does; the results."""
    dynamic = _dynamic_client(api)
    applied = []
    for body in objects:
        with _DYNAMIC_LOCK:  # discovery (and its cache refresh) is not safe across threads
            resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        namespace = body.get("metadata", {}).get("namespace")
        with api_errors():
            result = resource.server_side_apply(
                body=body,
                name=body["metadata"]["name"],
                namespace=namespace,
                field_manager=field_manager,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        applied.append(result.to_dict())
    return applied


def listed_items(response: Any) -> list[dict[str, Any]]:
    """A list's items as the API server sent them (a call made with `_preload_content=False`):
    the client's model objects, and back, cost more than the request, at thousands a cycle."""
    return cast(list[dict[str, Any]], json.loads(response.data)["items"])


def wake_on_changes(
    list_call: Callable[..., Any], wake: threading.Event, name: str, *args: str
) -> threading.Thread:
    """Set `wake` on every change a watch of `list_call(*args)` reports, in a daemon thread
    that starts the watch again when it ends."""

    def run() -> None:
        while True:
            try:
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    list_call, *args, timeout_seconds=300, deserialize=False
                )
                for _ in stream:
                    wake.set()
            except Exception:
                logger.exception("%s ended; starting again", name)
                threading.Event().wait(5)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
