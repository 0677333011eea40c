"""The kubelet's status manager: pod statuses written to the API server by a few threads, so
the pod work never waits on a request.

As upstream's manager syncs the latest status it holds, a status replaced before it was sent is
never sent; the writes of one pod keep their order (one thread at a time writes a pod), and a
status of a pod the kubelet has forgotten (deleted, perhaps replaced by a pod of the same name)
is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bridgescale import kube
from bridgescale.simulator.api import RawApi
from bridgescale.simulator.resources import Body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusWrite:
    uid: str
    name: str
    namespace: str
    status: Body


class StatusWriter:
    """`put` from the pod worker; `run` in each writer thread. `is_known(uid)` says whether the
    kubelet still runs the pod, at the moment of writing."""

    def __init__(self, api: RawApi, is_known: Callable[[str], bool]) -> None:
        self._api = api
        self._is_known = is_known
        self._ready = threading.Condition()
        self._latest: dict[str, StatusWrite] = {}  # in the order they came; a newer one replaces
        self._writing: set[str] = set()

    def put(self, write: StatusWrite) -> None:
        with self._ready:
            self._latest[write.uid] = write
            self._ready.notify()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            write = self._next(timeout=0.5)
            if write is None:
                continue
            try:
                self._write(write)
            except Exception:
                logger.exception("status of %s/%s not written", write.namespace, write.name)
            finally:
                with self._ready:
                    self._writing.discard(write.uid)
                    if write.uid in self._latest:  # a newer status came while this one went
                        self._ready.notify()

    def _next(self, timeout: float) -> StatusWrite | None:
        with self._ready:
            uid = self._free()
            if uid is None:
                self._ready.wait(timeout)
                uid = self._free()
            if uid is None:
                return None
            self._writing.add(uid)
            return self._latest.pop(uid)

    def _free(self) -> str | None:
        return next((uid for uid in self._latest if uid not in self._writing), None)

    def _write(self, write: StatusWrite) -> None:
        if not self._is_known(write.uid):
            return
        try:
            self._api.patch_pod_status(write.name, write.namespace, {"status": write.status})
        except kube.NotFound:
            logger.debug("%s/%s gone before its status was written", write.namespace, write.name)
