"""Settings of `bridgescale recommender` and `bridgescale recommend`: flags over environment
(prefix `BRIDGESCALE_RECOMMENDER_`) over defaults; read once at start and passed in."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGESCALE_RECOMMENDER_", frozen=True)

    interval_seconds: int = Field(default=60, ge=5, le=3600, description="between two cycles")
    step_seconds: int = Field(
        default=300, ge=15, le=3600, description="resolution of the usage read from Prometheus"
    )
    initial_history_hours: float = Field(
        default=168.0,
        gt=0,
        le=24 * 30,
        description="history read for a namespace seen for the first time (one week)",
    )
    read_workers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="namespaces whose history is read at once (Prometheus answers one while "
        "the recommender folds another into the model)",
    )
    history_chunk_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="history is read in pieces of at most this long, each folded into the model "
        "before the next is read, so that a first read of a week holds a day in memory",
    )
    checkpoint_interval_seconds: int = Field(
        default=600, ge=10, le=86400, description="how often model state is saved to the API"
    )
    status_refresh_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="an unchanged ResourceRecommendation status is written again after this "
        "long (its lastUpdateTime); changed ones are written at once",
    )
    status_change_ratio: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="a ResourceRecommendation status is written at once when an amount in it "
        "moved by more than this fraction since it was written, or anything else changed; "
        "smaller moves wait for the refresh (`status_refresh_seconds`)",
    )
    publish_workers: int = Field(
        default=8, ge=1, le=64, description="workloads published (and checkpointed) at once"
    )
    model: str = Field(default="bridgescale", description="recommender from the models registry")
    kubeconfig: Path | None = Field(default=None, description="else in-cluster or $KUBECONFIG")
    host: str = Field(default="0.0.0.0", description="address of /healthz, /readyz, /metrics")  # noqa: S104
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    leader_election: bool = Field(default=True, description="one active replica, on a Lease")
    lease_namespace: str = Field(default="bridgescale-system", description="the Lease's namespace")
    lease_name: str = Field(default="bridgescale-recommender", description="the Lease's name")
    lease_duration_seconds: int = Field(
        default=30, ge=5, le=600, description="a leader silent this long is replaced"
    )
    identity: str = Field(
        default_factory=socket.gethostname, min_length=1, description="holder name (the host name)"
    )
