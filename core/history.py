"""The one layer of bridgescale that reads Prometheus (or Thanos, or Mimir: the same HTTP API).

It asks for usage per namespace, a few queries per cycle whatever the number of containers,
aggregated on the server (`rate`, `max_over_time`, subqueries) to one point per step per
container, and returns plain data. Everything Prometheus can answer badly (NaN, infinities, empty
results, points out of order) is cleaned here; a Prometheus that does not answer after the
retries is `PrometheusUnavailable`, an expected outcome the caller turns into a condition.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgescale.quantity import POD, largest

UsageResource = Literal["cpu", "memory", "gpu-memory"]
FloatArray = npt.NDArray[np.float64]
MIB = 1024**2
logger = logging.getLogger("bridgescale.history")


class PrometheusUnavailable(Exception):
    """Prometheus did not answer, or answered with an error, after every retry."""


class PrometheusSettings(BaseSettings):
    """Where Prometheus is and how to authenticate; env prefix `BRIDGESCALE_PROMETHEUS_`.

    In-cluster Prometheus usually needs a bearer token (a service account token file) and the
    cluster CA; Thanos and Mimir behind a gateway often use basic auth.
    """

    model_config = SettingsConfigDict(env_prefix="BRIDGESCALE_PROMETHEUS_", frozen=True)

    url: str = Field(
        default="http://prometheus-operated.monitoring:9090",
        min_length=1,
        description="Prometheus (or a Thanos, Mimir or VictoriaMetrics query endpoint)",
    )
    bearer_token: SecretStr | None = Field(default=None, description="sent as a bearer token")
    bearer_token_file: Path | None = Field(
        default=None, description="read at each connection, so a rotated token is picked up"
    )
    username: str | None = Field(default=None, description="basic auth")
    password: SecretStr | None = Field(default=None, description="basic auth")
    ca_file: Path | None = Field(default=None, description="CA bundle that signed Prometheus")
    insecure_skip_verify: bool = Field(
        default=False, description="skip TLS verification (never in production)"
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=300, description="per query")
    retries: int = Field(default=3, ge=0, le=10, description="retries of a failed query")
    backoff_seconds: float = Field(
        default=1.0, ge=0, le=60, description="first wait between retries, doubling"
    )
    org_id: str | None = Field(default=None, description="X-Scope-OrgID header for Mimir")


@dataclass(frozen=True)
class ContainerSeries:
    """Points of one resource for one container of one pod, in increasing time order."""

    pod: str
    container: str
    resource: UsageResource
    times: FloatArray
    values: FloatArray


@dataclass(frozen=True)
class OomKill:
    pod: str
    container: str
    time: float


@dataclass(frozen=True)
class NamespaceUsage:
    """Usage of every container of a namespace over [start, end)."""

    namespace: str
    start: float
    end: float
    series: list[ContainerSeries] = field(default_factory=list)
    oom_kills: list[OomKill] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(len(s.times) for s in self.series)


def escape_label_value(value: str) -> str:
    """A label value as a PromQL double-quoted string literal's content."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _selector(namespace: str, extra: str = "") -> str:
    matchers = f'namespace="{escape_label_value(namespace)}",container!="",container!="POD"'
    return "{" + matchers + extra + "}"


BY = "by (namespace, pod, container)"


def usage_queries(namespace: str, step_seconds: int) -> dict[UsageResource, str]:
    """One query per resource for a whole namespace, one point per container per step.

    cpu: mean cores over the step (rate handles counter resets); memory: the peak working set of
    the step; GPU memory: the peak framebuffer use of the step, summed over a container's GPUs
    and turned from MiB into bytes.
    """
    window = f"[{step_seconds}s]"
    selector = _selector(namespace)
    return {
        "cpu": f"sum {BY} (rate(container_cpu_usage_seconds_total{selector}{window}))",
        "memory": f"max {BY} (max_over_time(container_memory_working_set_bytes{selector}{window}))",
        "gpu-memory": (f"sum {BY} (max_over_time(DCGM_FI_DEV_FB_USED{selector}{window})) * {MIB}"),
    }


POD_BY = "by (namespace, pod)"


def pod_level_queries(namespace: str, step_seconds: int) -> dict[UsageResource, str]:
    """The summed usage of each pod's containers, one point per pod per step, for pods with
    pod-level resources: cpu the mean cores of the step; memory the peak of the sum within the
    step (a subquery at the evaluation interval), not the sum of each container's peak."""
    # TODO(the simulator exports the pod cgroup's series): read cAdvisor's pod-level series
    # (container="") where they exist; they count what no container is charged for.
    window = f"[{step_seconds}s]"
    selector = _selector(namespace)
    summed = f"sum {POD_BY} (container_memory_working_set_bytes{selector})"
    return {
        "cpu": f"sum {POD_BY} (rate(container_cpu_usage_seconds_total{selector}{window}))",
        "memory": f"max {POD_BY} (max_over_time(({summed})[{step_seconds}s:]))",
    }


def oom_query(namespace: str, step_seconds: int) -> str:
    """1 for each step in which a container was OOM-killed, per cAdvisor or kube-state-metrics.

    kube-state-metrics only says why the *last* termination happened, so a restart in the step
    (a subquery over the restart counter) is what dates an OOMKilled reason.
    """
    window = f"[{step_seconds}s]"
    selector = _selector(namespace)
    oom_reason = _selector(namespace, ',reason="OOMKilled"')
    cadvisor = f"max {BY} (increase(container_oom_events_total{selector}{window}) > 0)"
    restarted = (
        f"max {BY} (max_over_time((delta(kube_pod_container_status_restarts_total{selector}[2m])"
        f" > 0)[{step_seconds}s:1m]))"
    )
    last_reason = f"max {BY} (kube_pod_container_status_last_terminated_reason{oom_reason})"
    return f"({cadvisor}) or (({restarted}) and on (namespace, pod, container) ({last_reason}))"


def memory_peak_query(namespace: str, window_seconds: int) -> str:
    """The highest working set of each container of the namespace over the last window."""
    selector = _selector(namespace)
    return (
        f"max {BY} (max_over_time(container_memory_working_set_bytes{selector}[{window_seconds}s]))"
    )


def parse_point(value: Any) -> float:
    """A sample value as Prometheus sends it (a string, possibly "NaN", "+Inf" or "-Inf")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pairs(raw: Iterable[Any], dropped: Counter[str]) -> FloatArray:
    """`[[time, "value"], ...]` as an (n, 2) array; what is not a number becomes NaN, and what
    is not a pair is counted as malformed."""
    points = raw if isinstance(raw, list) else list(raw)
    try:
        pairs = np.array(points, dtype=np.float64)  # numpy reads the strings, NaN and Inf too
    except (TypeError, ValueError):
        pass  # a value numpy cannot read, or ragged points: one by one below
    else:
        if pairs.ndim == 2 and pairs.shape[1] == 2:
            return pairs
    kept = []
    for point in points:
        if not isinstance(point, Sequence) or isinstance(point, str) or len(point) != 2:
            dropped["malformed"] += 1
            continue
        kept.append((parse_point(point[0]), parse_point(point[1])))
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def _clean(
    raw: Iterable[Any], resource: UsageResource, dropped: Counter[str]
) -> tuple[FloatArray, FloatArray]:
    pairs = _pairs(raw, dropped)
    finite = np.isfinite(pairs).all(axis=1)
    negative = finite & (pairs[:, 1] < 0)  # no usage is negative (a rate across a reset is)
    huge = finite & (pairs[:, 1] > largest(resource))
    for why, mask in (("NaN or infinite", ~finite), ("negative", negative),
                      ("beyond any real size", huge)):  # fmt: skip
        if count := int(mask.sum()):
            dropped[why] += count
    pairs = pairs[finite & ~negative & ~huge]
    order = np.argsort(pairs[:, 0], kind="stable")
    times, values = pairs[order, 0], pairs[order, 1]
    last_of_time = np.append(times[1:] != times[:-1], True)[: len(times)]
    return times[last_of_time], values[last_of_time]


def clean_points(
    raw: Iterable[Any], resource: UsageResource = "memory"
) -> tuple[FloatArray, FloatArray]:
    """Time-ordered usable points from `[[time, "value"], ...]`: NaN, infinities, negative
    values and values no real size reaches dropped; of two points at the same time the later
    one in the answer kept."""
    return _clean(raw, resource, Counter())


def _by_container(
    result: Any, key: str, dropped: Counter[str], pod_level: bool = False
) -> Iterator[tuple[str, str, list[Any]]]:
    """(pod, container, entry[key]) of each well-formed entry of a query's `result`, counting
    the others in `dropped`; entries of `pod_level` queries carry no container label and are
    named POD."""
    for entry in result if isinstance(result, list) else []:
        labels = entry.get("metric") if isinstance(entry, Mapping) else None
        payload = entry.get(key) if isinstance(entry, Mapping) else None
        pod = labels.get("pod") if isinstance(labels, Mapping) else None
        container = POD if pod_level else (labels or {}).get("container")
        if isinstance(payload, list) and isinstance(pod, str) and isinstance(container, str):
            yield pod, container, payload
        else:
            dropped["malformed series"] += 1


def _log_dropped(resource: UsageResource, dropped: Counter[str]) -> None:
    if dropped:
        reasons = ", ".join(f"{count} {why}" for why, count in sorted(dropped.items()))
        logger.warning("Prometheus %s answer: left out %s", resource, reasons)


def parse_matrix(
    result: Any, resource: UsageResource, pod_level: bool = False
) -> list[ContainerSeries]:
    """Series of a range query's `result`; malformed entries, unusable points and empty series
    are left out, with one log line saying how many and why. Series of `pod_level` queries
    carry no container label: they are named POD."""
    series = []
    dropped: Counter[str] = Counter()
    for pod, container, values in _by_container(result, "values", dropped, pod_level):
        times, points = _clean(values, resource, dropped)
        if len(times):
            series.append(ContainerSeries(pod, container, resource, times, points))
    _log_dropped(resource, dropped)
    return series


def parse_oom_kills(result: Any) -> list[OomKill]:
    kills = []
    for series in parse_matrix(result, "memory"):
        kills += [
            OomKill(series.pod, series.container, float(t)) for t in series.times[series.values > 0]
        ]
    return kills


def _session(settings: PrometheusSettings) -> requests.Session:
    session = requests.Session()
    if settings.insecure_skip_verify:
        session.verify = False
    elif settings.ca_file is not None:
        session.verify = str(settings.ca_file)
    return session


def _headers(settings: PrometheusSettings) -> dict[str, str]:
    headers = {}
    token = settings.bearer_token.get_secret_value() if settings.bearer_token else None
    if settings.bearer_token_file is not None:
        token = settings.bearer_token_file.read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if settings.org_id:
        headers["X-Scope-OrgID"] = settings.org_id
    return headers


class History:
    """Usage history from Prometheus, through prometheus-api-client."""

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_query: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._on_query = on_query  # called for every request sent, retries included
        self._http = _session(settings)

    def _connect(self) -> PrometheusConnect:
        settings = self.settings
        auth = self._auth()
        return PrometheusConnect(
            url=settings.url.rstrip("/"),
            headers=_headers(settings),
            auth=auth,
            session=_session(settings),
            # Retries are ours (below), with backoff over the whole query, not per connection.
            retry=requests.adapters.Retry(total=0),
            timeout=settings.timeout_seconds,
        )

    def _retrying(self, ask: Callable[[], Any]) -> Any:
        """`ask()`, retried with backoff; PrometheusUnavailable once every attempt failed."""
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            self._on_query()
            try:
                return ask()
            except (requests.RequestException, PrometheusApiClientException, ValueError) as error:
                if attempt + 1 == attempts:
                    raise PrometheusUnavailable(
                        f"{self.settings.url} did not answer after {attempts} attempts: {error}"
                    ) from error
                self._sleep(self.settings.backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _query_range(self, query: str, start: float, end: float, step: int) -> Any:
        logger.debug("query %s over [%.0f, %.0f] step %ds at %s", query, start, end, step,
                     self.settings.url)  # fmt: skip
        return self._retrying(lambda: self._get_range(query, start, end, step))

    def _get_range(self, query: str, start: float, end: float, step: int) -> Any:
        """`/api/v1/query_range`, decoded with orjson: a week of a namespace of a thousand
        containers is some 60 MB of JSON, which the standard library decodes at half the speed
        (prometheus-api-client's own call decodes with it)."""
        response = self._http.get(
            f"{self.settings.url.rstrip('/')}/api/v1/query_range",
            params={
                "query": query,
                "start": str(round(start)),
                "end": str(round(end)),
                "step": f"{step}s",
            },
            headers=_headers(self.settings),
            auth=self._auth(),
            timeout=self.settings.timeout_seconds,
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP status {response.status_code}: {response.content[:500]!r}"
            )
        answer = orjson.loads(response.content)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise ValueError("not a Prometheus query answer")
        return answer["data"].get("result")

    def _auth(self) -> tuple[str, str] | None:
        settings = self.settings
        if settings.username is None:
            return None
        password = settings.password.get_secret_value() if settings.password else ""
        return (settings.username, password)

    def memory_peaks(self, namespace: str, window_seconds: int) -> dict[tuple[str, str], float]:
        """(pod, container) -> the highest working set over the last `window_seconds`."""
        prometheus = self._connect()
        result = self._retrying(
            lambda: prometheus.custom_query(memory_peak_query(namespace, window_seconds))
        )
        return parse_vector(result)

    def _check(self, prometheus: PrometheusConnect) -> None:
        for attempt in range(self.settings.retries + 1):
            self._on_query()
            try:
                if prometheus.check_prometheus_connection():
                    return
            except requests.RequestException:
                pass
            self._sleep(self.settings.backoff_seconds * 2**attempt)
        raise PrometheusUnavailable(f"{self.settings.url} does not answer")

    def namespace_usage(
        self, namespace: str, start: float, end: float, step_seconds: int, pod_level: bool = False
    ) -> NamespaceUsage:
        """Usage of the namespace's containers, one point per step, for steps ending in
        (start, end]: the caller passes the previous `end` as the next `start`. With
        `pod_level`, also each pod's summed usage, as series of the container POD."""
        prometheus = self._connect()
        first = start + step_seconds  # each point covers the step before it
        usage = NamespaceUsage(namespace, start, end)
        if first > end:  # no new step yet; still tell whether Prometheus answers
            self._check(prometheus)
            return usage
        for resource, query in usage_queries(namespace, step_seconds).items():
            result = self._query_range(query, first, end, step_seconds)
            usage.series.extend(parse_matrix(result, resource))
        queries = pod_level_queries(namespace, step_seconds) if pod_level else {}
        for resource, query in queries.items():
            result = self._query_range(query, first, end, step_seconds)
            usage.series.extend(parse_matrix(result, resource, pod_level=True))
        result = self._query_range(oom_query(namespace, step_seconds), first, end, step_seconds)
        usage.oom_kills.extend(parse_oom_kills(result))
        return usage

    def current_usage(
        self, namespace: str, window_seconds: int = 60
    ) -> dict[tuple[str, str], dict[UsageResource, float]]:
        """Usage of the namespace's containers now, over the last `window_seconds` (mean cpu,
        peak memory and GPU memory), by (pod, container): three instant queries, for a live
        view such as the demo's."""
        prometheus = self._connect()
        usage: dict[tuple[str, str], dict[UsageResource, float]] = {}
        for resource, query in usage_queries(namespace, window_seconds).items():
            result = self._retrying(partial(prometheus.custom_query, query))
            for (pod, container), value in parse_vector(result, resource).items():
                usage.setdefault((pod, container), {})[resource] = value
        return usage


def parse_vector(result: Any, resource: UsageResource = "memory") -> dict[tuple[str, str], float]:
    """Values of an instant query's `result` by (pod, container); malformed entries and
    unusable values (as `clean_points` says) are left out, with one log line."""
    values = {}
    dropped: Counter[str] = Counter()
    for pod, container, point in _by_container(result, "value", dropped):
        _, points = _clean([point], resource, dropped)
        if len(points):
            values[(pod, container)] = float(points[0])
    _log_dropped(resource, dropped)
    return values


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
