"""Publishing one namespace's results: ResourceRecommendation status, VPA status, metrics.

Writes carry the resourceVersion they were computed from; on a conflict the object is read
again and the status recomputed once. A namespace whose history could not be read keeps every
published recommendation and only gets the `PrometheusUnavailable` condition.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from bridgescale.kube import Conflict, KubeError, NotFound
from bridgescale.kube import recommendations as kube_recommendations
from bridgescale.kube.recommendations import PublishedRecommendation, VpaObject
from bridgescale.kube.workloads import ApiClient, Workload
from bridgescale.recommender.metrics import RecommenderMetrics
from bridgescale.recommender.status import (
    ContainerResult,
    nearly_equal,
    recommendation_status,
    unavailable_status,
    vpa_status,
)

if TYPE_CHECKING:
    from bridgescale.recommender.cycle import NamespaceRead, WorkloadResult

logger = logging.getLogger(__name__)
RECOMMENDER_NAME = "bridgescale"

StatusOf = Callable[[Mapping[str, Any]], dict[str, Any]]


class Publisher:
    def __init__(
        self,
        api: ApiClient,
        metrics: RecommenderMetrics,
        *,
        workers: int = 1,
        refresh: dt.timedelta = dt.timedelta(minutes=10),
        change_ratio: float = 0.0,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.workers = workers
        self.refresh = refresh  # an unchanged status is written again after this long
        # Amounts that moved by less than this are no change: each cycle's new samples nudge
        # most targets, and rewriting thousands of statuses a minute for it loads the API
        # server for nothing the updater acts on (it acts on moves of 10 % by default).
        self.change_ratio = change_ratio

    def publish(self, read: NamespaceRead, results: list[WorkloadResult], now: dt.datetime) -> None:
        existing = {
            r.name: r for r in kube_recommendations.list_recommendations(self.api, read.namespace)
        }
        vpas = kube_recommendations.list_vpas(self.api, read.namespace)

        def publish_one(result: WorkloadResult) -> None:
            status_of = self._status_of(read, result, now)
            current = existing.get(result.workload.ref.name)
            if current is None or self._due(current.status, status_of(current.status), now):
                self._publish_workload(result.workload, current, status_of)
            if read.history_error is None:
                self._publish_vpas(result, vpas, now)

        # Each workload is a write of its own: several at once, as one by one a fleet of
        # thousands takes minutes.
        if self.workers > 1 and len(results) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(publish_one, results))
        else:
            for result in results:
                publish_one(result)
        if read.history_error is None:
            self.metrics.publish(
                read.namespace,
                [pair for r in results for pair in r.containers],
                [
                    (r.workload.ref.kind, r.workload.ref.name, p)
                    for r in results
                    for p in r.workload.pods
                ],
            )

    def _due(self, previous: Mapping[str, Any], fresh: Mapping[str, Any], now: dt.datetime) -> bool:
        """Whether a status must be written: it changed (an amount by more than the change
        ratio), or its lastUpdateTime is older than the refresh interval (so that it still
        tells the recommender is at work, and small moves are written then)."""
        if not nearly_equal(_without_time(previous), _without_time(fresh), self.change_ratio):
            return True
        try:
            written = dt.datetime.fromisoformat(str(previous.get("lastUpdateTime")))
        except ValueError:
            return True
        return now - written >= self.refresh

    @staticmethod
    def _status_of(read: NamespaceRead, result: WorkloadResult, now: dt.datetime) -> StatusOf:
        if read.history_error is not None:
            error = read.history_error
            return lambda previous: unavailable_status(previous, error, now)
        containers = [c for _, c in result.containers]
        return lambda previous: recommendation_status(containers, previous, now)

    def _publish_workload(
        self,
        workload: Workload,
        current: PublishedRecommendation | None,
        status_of: StatusOf,
    ) -> None:
        try:
            if current is None:
                current = kube_recommendations.ensure_recommendation(self.api, workload.ref)
            try:
                kube_recommendations.write_recommendation_status(
                    self.api, current, status_of(current.status)
                )
            except Conflict:
                again = kube_recommendations.read_recommendation(
                    self.api, workload.ref.namespace, workload.ref.name
                )
                if again is not None:
                    kube_recommendations.write_recommendation_status(
                        self.api, again, status_of(again.status)
                    )
        except NotFound:  # the workload went while we worked
            return
        except KubeError as error:
            self.metrics.errors.labels("kubernetes").inc()
            logger.warning(
                "recommendation for %s/%s not published: %s",
                workload.ref.namespace,
                workload.ref.name,
                error,
            )

    def _publish_vpas(
        self, result: WorkloadResult, vpas: list[VpaObject], now: dt.datetime
    ) -> None:
        ref = result.workload.ref
        containers: list[ContainerResult] = [c for _, c in result.containers]
        for vpa in vpas:
            named = vpa.recommenders == (RECOMMENDER_NAME,)
            if not named or (vpa.target_ref.get("kind"), vpa.target_ref.get("name")) != (
                ref.kind,
                ref.name,
            ):
                continue
            try:
                kube_recommendations.write_vpa_status(
                    self.api, vpa, vpa_status(containers, vpa.status, now)
                )
            except (Conflict, NotFound):
                continue  # changed or gone since listed: the next cycle writes it
            except KubeError as error:
                self.metrics.errors.labels("kubernetes").inc()
                logger.warning("VPA %s/%s not updated: %s", vpa.namespace, vpa.name, error)


def _without_time(status: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if key != "lastUpdateTime"}
