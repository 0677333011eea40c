"""Settings of the local cluster: versions, where builds are cached, where state lives, ports."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "bridgescale"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding bridgescale's pyproject.toml, else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "bridgescale"' in pyproject.read_text():
            return folder
    return here


class LocalClusterSettings(BaseSettings):
    """How `bridgescale dev` builds and runs the local cluster.

    Every field can be set from the environment with the prefix `BRIDGESCALE_DEV_`, for example
    `BRIDGESCALE_DEV_KUBERNETES_VERSION=v1.36.3`.
    """

    model_config = SettingsConfigDict(env_prefix="BRIDGESCALE_DEV_", frozen=True)

    kubernetes_version: str = Field(
        default="v1.37.2",
        pattern=r"^v1\.\d+\.\d+$",
        description="Release of k8s.io/kubernetes whose control plane is built.",
    )
    etcd_version: str = Field(
        default="v3.6.17",
        pattern=r"^v3\.\d+\.\d+$",
        description="Release of go.etcd.io/etcd/server/v3 that is built.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where builds, the Go module cache and the Go build cache are kept.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where a running environment keeps certificates, data, logs and its env "
        "file; defaults to .bridgescale/ at the project root.",
    )
    port_base: int = Field(
        default=16440,
        ge=1024,
        le=65000,
        description="First of the loopback ports used: etcd on port_base + 0 and +1, the API "
        "server on +3, the controller-manager on +4, the scheduler on +5, Prometheus on +6, the "
        "node simulator's metrics on +7, the demo's recommender /metrics on +8 and its "
        "updater's on +9.",
    )
    etcd_unsafe_no_fsync: bool = Field(
        default=True,
        description="Skip fsync in etcd: a throwaway local cluster needs no durability across "
        "power loss, and fsync dominates its latency on shared disks.",
    )
    ready_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long `dev up` waits for each part to be ready."
    )
    history_days: float = Field(
        default=7.0,
        ge=0,
        le=30,
        description="Days of metrics history backfilled into Prometheus before it starts.",
    )
    scrape_interval_seconds: int = Field(
        default=15, ge=1, le=300, description="How often the local Prometheus scrapes."
    )
    simulator: bool = Field(
        default=True, description="Start the node simulator (the tests start their own)."
    )
    nodes: int = Field(default=3, ge=0, le=500, description="Simulated nodes without a GPU.")
    mig_nodes: int = Field(
        default=1, ge=0, le=100, description="Simulated nodes with an 80 GB MIG-like GPU."
    )
    shared_gpu_nodes: int = Field(
        default=1, ge=0, le=100, description="Simulated nodes with a GPU shared by memory."
    )
    fleet: bool = Field(
        default=True, description="Create the demo fleet in the namespace `bridges`."
    )

    def resolved_state_dir(self) -> Path:
        return self.state_dir or find_project_root() / ".bridgescale"

    @property
    def binaries_dir(self) -> Path:
        return self.cache_dir / "bin" / f"kubernetes-{self.kubernetes_version}"

    @property
    def etcd_port(self) -> int:
        return self.port_base

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 1

    @property
    def apiserver_port(self) -> int:
        return self.port_base + 3

    @property
    def controller_manager_port(self) -> int:
        return self.port_base + 4

    @property
    def scheduler_port(self) -> int:
        return self.port_base + 5

    @property
    def prometheus_port(self) -> int:
        return self.port_base + 6

    @property
    def simulator_metrics_port(self) -> int:
        return self.port_base + 7

    @property
    def recommender_metrics_port(self) -> int:
        return self.port_base + 8

    @property
    def updater_metrics_port(self) -> int:
        return self.port_base + 9
