"""Settings of the node simulator, from flags (`--nodes 20`) or the environment
(`BRIDGESCALE_SIM_NODES=20`); read once at start and passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Pool = Literal["plain", "mig", "shared"]


@dataclass(frozen=True)
class NodeLayout:
    """One simulated node: its name, its pool, and the kubelet policies it runs."""

    name: str
    pool: Pool
    static_cpu_manager: bool = False
    static_memory_manager: bool = False
    swap: bool = False


class SimulatorSettings(BaseSettings):
    """How many simulated nodes of which pools, their size, and the kubelet's timings.

    The simulator acts for all its nodes with one identity (the kubeconfig's user): give it the
    local cluster's admin kubeconfig. A real kubelet authenticates as `system:node:<name>` and
    the Node authorizer confines it to its own node; the simulator is trusted instead.
    """

    model_config = SettingsConfigDict(
        env_prefix="BRIDGESCALE_SIM_",
        frozen=True,
        cli_kebab_case=True,
        cli_prog_name="python -m bridgescale.simulator",
    )

    kubeconfig: Path | None = Field(default=None, description="Defaults to $KUBECONFIG.")
    node_prefix: str = Field(
        default="sim",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Node names start with it (sim-0, sim-mig-0, ...).",
    )
    nodes: int = Field(default=3, ge=0, le=500, description="Nodes of the plain pool.")
    mig_nodes: int = Field(default=1, ge=0, le=100, description="Nodes with an 80 GB MIG GPU.")
    shared_gpu_nodes: int = Field(
        default=1, ge=0, le=100, description="Nodes with a GPU shared by memory capacity."
    )
    static_cpu_manager_nodes: int = Field(
        default=0,
        ge=0,
        description="How many plain nodes (the last ones) run the static CPU manager policy.",
    )
    static_memory_manager_nodes: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Extra plain-pool nodes with the static memory manager policy.",
    )
    swap_nodes: int = Field(
        default=0, ge=0, le=100, description="Extra plain-pool nodes with swap (LimitedSwap)."
    )
    node_cpu: str = Field(default="8", description="Allocatable cpu of each node.")
    node_memory: str = Field(default="32Gi", description="Allocatable memory of each node.")
    node_pods: int = Field(default=110, ge=1, description="Pods each node allows.")
    lease_seconds: int = Field(default=40, ge=10, description="Node lease duration.")
    node_status_seconds: float = Field(
        default=60.0, gt=0, description="How often the Ready condition is re-reported."
    )
    deferred_retry_initial_seconds: float = Field(
        default=30.0, gt=0, description="First retry of a deferred resize (upstream: 30 s)."
    )
    deferred_retry_seconds: float = Field(
        default=180.0, gt=0, description="Later retries of deferred resizes (upstream: 3 min)."
    )
    actuation_seconds: float = Field(
        default=0.5, ge=0, description="How long an allocated resize stays in progress."
    )
    resync_seconds: float = Field(
        default=10.0, gt=0, description="How often a failed resize actuation is tried again."
    )
    status_writers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads writing pod statuses to the API server (the kubelets' status "
        "managers, one per real node).",
    )
    usage_seconds: float = Field(
        default=5.0, gt=0, description="Step of the usage simulation (OOM kills, throttling)."
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no /metrics.")
    metrics_address: str = Field(
        default="127.0.0.1", description="Address of /metrics and the fault control."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json lines for log pipelines"
    )

    def pools(self) -> list[NodeLayout]:
        """Every simulated node. The nodes with swap or the static memory manager come last,
        so that adding them leaves the names and addresses of the others as they were."""
        first_static = self.nodes - self.static_cpu_manager_nodes
        prefix = self.node_prefix
        return [
            *(NodeLayout(f"{prefix}-{i}", "plain", i >= first_static) for i in range(self.nodes)),
            *(NodeLayout(f"{prefix}-mig-{i}", "mig") for i in range(self.mig_nodes)),
            *(NodeLayout(f"{prefix}-shared-{i}", "shared") for i in range(self.shared_gpu_nodes)),
            *(NodeLayout(f"{prefix}-swap-{i}", "plain", swap=True) for i in range(self.swap_nodes)),
            *(
                NodeLayout(f"{prefix}-memory-manager-{i}", "plain", static_memory_manager=True)
                for i in range(self.static_memory_manager_nodes)
            ),
        ]


def settings_from_args(argv: Sequence[str] | None) -> SimulatorSettings:
    """Settings from command-line flags over the environment and the defaults."""
    return SimulatorSettings(_cli_parse_args=list(argv) if argv is not None else True)  # type: ignore[call-arg]
