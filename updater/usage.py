"""Recent usage per container, from a cAdvisor / kube-state-metrics style endpoint (a kubelet's
`/metrics/cadvisor`, or the node simulator's `/metrics`), scraped at each pass.

Memory downscaling leans on two numbers: the current working set, read at each scrape, and the
recent peak. With a usage history (Prometheus) the peak is the highest working set over a
window there, so it survives an updater restart; the highest working set this updater has
scraped counts too. When the history is configured but does not answer, memory downscales
wait (increases go on).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bridgescale.updater.sizing import Usage

Key = tuple[str, str, str]  # namespace, pod, container
PeakWindow = Callable[[str], Mapping[tuple[str, str], float] | None]
"""namespace -> the highest working set per (pod, container) over a window of the usage
history; None when the history cannot say."""
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

    def __init__(
        self,
        url: str,
        fetch: Callable[[str], str] = _fetch,
        peak_window: PeakWindow | None = None,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._peak_window = peak_window
        self._window: dict[str, Mapping[tuple[str, str], float] | None] = {}
        self._now = Scrape()
        self._before = Scrape()
        self._peak: dict[Key, float] = {}

    def refresh(self) -> None:
        self._window.clear()
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
            peak, unknown = self._recent_peak(key)
            found[key[2]] = Usage(
                working_set=working_set,
                peak=peak,
                peak_unknown=unknown,
                throttled_ratio=self._throttled_ratio(key),
                oom_killed_recently=key in self._now.oom_killed,
                gpu_memory_full=self._gpu_full(key),
            )
        return found

    def _recent_peak(self, key: Key) -> tuple[float | None, bool]:
        """The recent peak of a container, and whether it is unknown (history down)."""
        scraped = self._peak.get(key)
        if self._peak_window is None:
            return scraped, False
        namespace, pod, container = key
        if namespace not in self._window:
            self._window[namespace] = self._peak_window(namespace)
        window = self._window[namespace]
        if window is None:
            return scraped, True
        peaks = [p for p in (scraped, window.get((pod, container))) if p is not None]
        return (max(peaks) if peaks else None), False
