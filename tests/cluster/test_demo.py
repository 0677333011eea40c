"""`bridgescale demo` end to end, as the README's first command runs it: on a fresh state
folder, a short scenario, a summary with in-place resizes and no restarts of the resized
bridges, a PNG chart, and no recommender or updater left running."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from bridgescale.localcluster.processes import ProcessSupervisor
from tests.cluster.conftest import TEST_PORT_BASE, cluster_settings

CLI = [sys.executable, "-m", "bridgescale"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCENARIO_MINUTES = 4
# A first start backfills a week of history: minutes on a busy 2-core machine.
DEMO_TIMEOUT_SECONDS = 1800


def _run(state_dir: Path, port_base: int, *arguments: str) -> tuple[int, str]:
    """Exit code and output of a command; the output also goes to a file in the state folder,
    to read while it runs or after a timeout."""
    env = dict(os.environ, BRIDGESCALE_DEV_PORT_BASE=str(port_base))
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"{arguments[0]}-output.log"
    with log.open("w") as output:
        done = subprocess.run(
            [*CLI, *arguments, "--state-dir", str(state_dir)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=DEMO_TIMEOUT_SECONDS,
            check=False,
        )
    return done.returncode, log.read_text()


def _figure(output: str, name: str) -> int:
    found = re.search(rf"\b{name}=(\d+)", output)
    assert found, f"no {name}= in the summary:\n{output[-3000:]}"
    return int(found.group(1))


@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS + 300)
def test_the_demo_ends_with_its_summary_and_chart() -> None:
    settings = cluster_settings("demo-test", port_base=TEST_PORT_BASE + 150)
    state_dir = settings.resolved_state_dir()
    shutil.rmtree(state_dir, ignore_errors=True)  # a fresh checkout has no state
    try:
        code, output = _run(
            state_dir, settings.port_base, "demo", "--minutes", str(SCENARIO_MINUTES), "--no-live"
        )
        print(output[-6000:])
        assert code == 0, output[-6000:]

        resizes = _figure(output, "resizes")
        assert resizes >= 1
        assert _figure(output, "restarts_of_resized") == 0
        assert _figure(output, "oom_kills") >= 0
        assert re.search(r"slack before: cpu=-?[\d.]+ cores memory=-?[\d.]+ GiB", output)
        assert re.search(r"slack after: cpu=-?[\d.]+ cores memory=-?[\d.]+ GiB", output)

        chart = re.search(r"chart: (\S+\.png)", output)
        assert chart, output[-3000:]
        png = Path(chart.group(1))
        assert png.is_relative_to(state_dir)
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000

        # The services ran, were scraped under the job names the dashboards use, and stopped.
        recorded = {p.name for p in ProcessSupervisor(state_dir).recorded() if p.is_running()}
        assert not recorded & {"bridgescale-recommender", "bridgescale-updater"}
        prometheus = PrometheusConnect(f"http://127.0.0.1:{settings.prometheus_port}")
        for job in ("bridgescale-recommender", "bridgescale-updater"):
            up = prometheus.custom_query(f'max_over_time(up{{job="{job}"}}[30m])')
            assert up and float(up[0]["value"][1]) == 1.0, (job, up)
    finally:
        down, said = _run(state_dir, settings.port_base, "dev", "down")
    assert down == 0, said
