"""A real Prometheus (Debian's package) for the local cluster: it scrapes the node simulator and
whatever bridgescale processes register, and starts with days of history backfilled from the
same workload model, written as OpenMetrics and turned into blocks by promtool."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bridgescale.localcluster.processes import ProcessSupervisor

RETENTION = "60d"  # longer than any backfilled age, so no backfilled block is dropped at start


class PrometheusError(RuntimeError):
    """Prometheus could not be installed, backfilled or started; the message says why."""


@dataclass(frozen=True)
class SeriesHistory:
    """One time series to backfill: a metric name, its labels and (unix seconds, value) points
    in increasing time order."""

    name: str
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class MetricFamily:
    """A metric family in OpenMetrics terms: counters are named without `_total` here."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    series: list[SeriesHistory] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics_lines(families: Iterable[MetricFamily]) -> Iterator[str]:
    """The OpenMetrics text of `families`, samples with timestamps, ending with `# EOF`.

    Every family's samples stay together and each series is in time order, as promtool's
    `create-blocks-from openmetrics` requires.
    """
    for family in families:
        yield f"# HELP {family.name} {family.help}"
        yield f"# TYPE {family.name} {family.kind}"
        sample_name = f"{family.name}_total" if family.kind == "counter" else family.name
        for series in family.series:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(series.labels.items()))
            prefix = f"{sample_name}{{{labels}}}" if labels else sample_name
            for timestamp, value in series.points:
                yield f"{prefix} {_format_value(value)} {timestamp:.3f}"
    yield "# EOF"


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port

    @property
    def labels(self) -> dict[str, str]:
        """The labels Prometheus attaches to every series scraped from this target."""
        return {"job": self.job, "instance": self.address}


class PrometheusServer:
    def __init__(
        self,
        state_dir: Path,
        supervisor: ProcessSupervisor,
        port: int,
        scrape_interval_seconds: int = 15,
    ) -> None:
        self.folder = state_dir / "prometheus"
        self._supervisor = supervisor
        self.port = port
        self._scrape_interval = scrape_interval_seconds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def targets_dir(self) -> Path:
        return self.folder / "targets"

    @staticmethod
    def binaries() -> tuple[str, str]:
        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if prometheus is None or promtool is None:
            raise PrometheusError(
                "prometheus and promtool are not installed: on Debian, "
                "`apt-get install --no-install-recommends prometheus` (make setup does it)"
            )
        return prometheus, promtool

    def register(self, target: ScrapeTarget) -> None:
        """Add a scrape target; Prometheus picks it up from its file-based discovery."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{target.job}.json"
        path.write_text(json.dumps([{"targets": [target.address], "labels": {"job": target.job}}]))

    def _write_config(self) -> Path:
        config = {
            "global": {
                "scrape_interval": f"{self._scrape_interval}s",
                "evaluation_interval": f"{self._scrape_interval}s",
            },
            "scrape_configs": [
                {
                    "job_name": "bridgescale-local",
                    "honor_labels": True,
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}
                    ],
                }
            ],
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def backfill(self, families: Iterable[MetricFamily]) -> int:
        """Turn history into TSDB blocks in the data folder; the number of samples written.

        Call before `start`: only the time before live scraping begins may be backfilled.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        source = self.folder / "backfill.om"
        samples = 0
        with source.open("w") as out:
            for line in openmetrics_lines(families):
                samples += not line.startswith("#")
                out.write(line + "\n")
        self.create_blocks(source)
        return samples

    def create_blocks(self, source: Path) -> None:
        """Turn an OpenMetrics file (see `openmetrics_lines`) into blocks in the data folder, and
        delete it. promtool reads the whole file once per two-hour block it writes, so large
        histories go faster as one file per two-hour window."""
        _, promtool = self.binaries()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [promtool, "tsdb", "create-blocks-from", "-q", "openmetrics"]
        result = subprocess.run(
            [*command, str(source), str(self.data_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        source.unlink()
        if result.returncode != 0:
            raise PrometheusError(f"promtool could not backfill: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        prometheus, _ = self.binaries()
        config = self._write_config()
        self._supervisor.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            if self._supervisor.find("prometheus") is None:
                raise PrometheusError(
                    f"prometheus exited at start; see {self._supervisor.logs_dir}/prometheus.log"
                )
            time.sleep(0.3)
        raise PrometheusError(f"prometheus was not ready within {timeout:.0f} s")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
