"""Recent usage per container, from a cAdvisor / kube-state-metrics style endpoint (a kubelet's
`/metrics/cadvisor`, or the node simulator's `/metrics`), scraped at each pass.

Memory downscaling leans on two numbers: the current working set, read at each scrape, and the
recent peak, the highest working set this updater has seen for the container.
TODO(recommender's Prometheus history merged): take the peak from `max_over_time` over a window,
so that it survives an updater restart; until then it starts again from the first scrape.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bridgescale.updater.sizing import Usage

Key = tuple[str, str, str]  # namespace, pod, container
GPU_FULL_RATIO = 0.02


@dataclass
class Scrape:
    """The samples the updater reads, by container."""

    working_set: dict[Key, float] = field(default_factory=dict)
    periods: dict[Key, float] = field(default_factory=dict)
    throttled: dict[Key, float] = field(default_factory=dict)
    oom_killed: set[Key] = field(default_factory=set)
    gpu_used: dict[Key, float] = field(default_factory=dict)  # MiB, DCGM, summed over GPUs
    gpu_free: dict[Key, float] = field(default_factory=dict)


def parse_scrape(text: str) -> Scrape:
    scrape = Scrape()
    targets = {
        "container_memory_working_set_bytes": scrape.working_set,
        "container_cpu_cfs_periods": scrape.periods,
        "container_cpu_cfs_throttled_periods": scrape.throttled,
    }
    gpu = {"DCGM_FI_DEV_FB_USED": scrape.gpu_used, "DCGM_FI_DEV_FB_FREE": scrape.gpu_free}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))
            name = sample.name.removesuffix("_total")
            oom = labels.get("reason") == "OOMKilled" and sample.value > 0
            if name in targets:
                targets[name][key] = float(sample.value)
            elif name in gpu:
                gpu[name][key] = gpu[name].get(key, 0.0) + float(sample.value)
            elif name == "kube_pod_container_status_last_terminated_reason" and oom:
                scrape.oom_killed.add(key)
    return scrape


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a configured URL)
        return str(response.read().decode())


class ScrapedUsage:
    """`UsageSource` over a metrics endpoint; call `refresh()` once per pass."""

    def __init__(self, url: str, fetch: Callable[[str], str] = _fetch) -> None:
        self.url = url
        self._fetch = fetch
        self._now = Scrape()
        self._before = Scrape()
        self._peak: dict[Key, float] = {}

    def refresh(self) -> None:
        self._before, self._now = self._now, parse_scrape(self._fetch(self.url))
        for key, value in self._now.working_set.items():
            self._peak[key] = max(value, self._peak.get(key, 0.0))

    def _throttled_ratio(self, key: Key) -> float:
        periods = self._now.periods.get(key, 0.0) - self._before.periods.get(key, 0.0)
        throttled = self._now.throttled.get(key, 0.0) - self._before.throttled.get(key, 0.0)
        return throttled / periods if periods > 0 and key in self._before.periods else 0.0

    def _gpu_full(self, key: Key) -> bool:
        """GPU memory used up to what the claim gives (DCGM's free framebuffer at 2 % or less)."""
        used, free = self._now.gpu_used.get(key), self._now.gpu_free.get(key)
        return used is not None and free is not None and free <= GPU_FULL_RATIO * (used + free)

    def usage(self, namespace: str, pod: str) -> Mapping[str, Usage]:
        found = {}
        for key, working_set in self._now.working_set.items():
            if key[:2] != (namespace, pod) or not key[2]:
                continue
            found[key[2]] = Usage(
                working_set=working_set,
                peak=self._peak.get(key),
                throttled_ratio=self._throttled_ratio(key),
                oom_killed_recently=key in self._now.oom_killed,
                gpu_memory_full=self._gpu_full(key),
            )
        return found
