"""Usage read from a cAdvisor / kube-state-metrics style endpoint: working set, peak, throttling
between two scrapes, and a recent OOM kill."""

from __future__ import annotations

from bridgescale.updater.usage import ScrapedUsage

LABELS = 'namespace="bridges",pod="bridge-0",container="router"'


def _page(working_set: int, periods: int, throttled: int, oom: bool = False) -> str:
    lines = [
        f"container_memory_working_set_bytes{{{LABELS}}} {working_set}",
        f"container_cpu_cfs_periods_total{{{LABELS}}} {periods}",
        f"container_cpu_cfs_throttled_periods_total{{{LABELS}}} {throttled}",
    ]
    if oom:
        lines.append(
            f'kube_pod_container_status_last_terminated_reason{{{LABELS},reason="OOMKilled"}} 1'
        )
    return "\n".join(lines) + "\n"


def test_peak_throttling_and_oom_across_scrapes() -> None:
    pages = iter([_page(300, 100, 0), _page(200, 200, 50, oom=True)])
    usage = ScrapedUsage("http://metrics", fetch=lambda _: next(pages))

    usage.refresh()
    first = usage.usage("bridges", "bridge-0")["router"]
    assert (first.working_set, first.peak, first.throttled_ratio) == (300, 300, 0.0)

    usage.refresh()
    second = usage.usage("bridges", "bridge-0")["router"]
    assert second.working_set == 200
    assert second.peak == 300
    assert second.throttled_ratio == 0.5
    assert second.oom_killed_recently
    assert usage.usage("bridges", "other") == {}


def test_gpu_memory_used_up_when_dcgm_reports_no_free_framebuffer() -> None:
    def page(used: int, free: int) -> str:
        gpu = f'{LABELS},gpu="0",UUID="MIG-0"'
        return _page(300, 100, 0) + (
            f"DCGM_FI_DEV_FB_USED{{{gpu}}} {used}\nDCGM_FI_DEV_FB_FREE{{{gpu}}} {free}\n"
        )

    pages = iter([page(6000, 4240), page(10240, 0)])
    usage = ScrapedUsage("http://metrics", fetch=lambda _: next(pages))
    usage.refresh()
    assert not usage.usage("bridges", "bridge-0")["router"].gpu_memory_full
    usage.refresh()
    assert usage.usage("bridges", "bridge-0")["router"].gpu_memory_full
