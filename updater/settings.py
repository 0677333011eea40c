"""The updater's settings: read once at start (flags over `BRIDGESCALE_UPDATER_*` variables over
these defaults) and passed in; nothing reads the environment at import time."""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UpdaterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGESCALE_UPDATER_", frozen=True)

    tolerance: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Act when a request differs from the target by more than this fraction, "
        "even inside [lowerBound, upperBound].",
    )
    memory_peak_margin: float = Field(
        default=1.15,
        ge=1,
        le=4,
        description="A memory request or limit never goes below the recent peak times this.",
    )
    memory_headroom_bytes: int = Field(
        default=64 * 1024**2,
        ge=0,
        description="A memory request or limit never goes below the working set plus this.",
    )
    memory_peak_window: dt.timedelta = Field(
        default=dt.timedelta(hours=24),
        description="The recent peak is the highest working set over this window of the usage "
        "history (with `--prometheus-url`).",
    )
    memory_max_step_down: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Largest fraction by which one resize lowers a memory request or limit.",
    )
    risk_usage_ratio: float = Field(
        default=0.90,
        gt=0,
        le=1,
        description="A container whose working set reaches this fraction of its memory limit "
        "is at risk.",
    )
    risk_throttled_ratio: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="A container throttled in this fraction of its CFS periods is at risk.",
    )
    risk_step_up: float = Field(
        default=1.25,
        ge=1,
        le=4,
        description="An at-risk resource grows at least by this factor.",
    )
    cool_down: dt.timedelta = Field(
        default=dt.timedelta(minutes=10),
        description="No new resize of a pod for this long after its last one.",
    )
    deferral_timeout: dt.timedelta = Field(
        default=dt.timedelta(minutes=5),
        description="A resize Deferred this long falls back to recreate, when the mode allows.",
    )
    in_progress_timeout: dt.timedelta = Field(
        default=dt.timedelta(hours=1),
        description="A resize InProgress this long falls back to recreate, when the mode allows.",
    )
    max_changes_per_minute: int = Field(
        default=20, ge=1, description="Resizes and recreations started per minute, overall."
    )
    max_workload_changes_per_minute: int = Field(
        default=5, ge=1, description="Resizes and recreations started per minute, per workload."
    )
    resize_workers: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Pods resized at once within a pass (each resize is one PATCH and its "
        "Events); 1 resizes them one by one.",
    )
    resync_seconds: float = Field(
        default=30.0, gt=0, description="A full pass at least this often."
    )
    burst_lookahead: dt.timedelta = Field(
        default=dt.timedelta(hours=3),
        description="Memory is not lowered when the recommendation's load forecast rises "
        "above `burst_ratio` times the current hour's load within this long.",
    )
    burst_ratio: float = Field(default=1.5, gt=1, description="See `burst_lookahead`.")
    recreate_lead: dt.timedelta = Field(
        default=dt.timedelta(minutes=2),
        description="A planned recreate goes at least this long before its deadline (a "
        "NoExecute device taint's eviction time), leaving time for the new pod to start.",
    )
    gpu_health_window: dt.timedelta = Field(
        default=dt.timedelta(hours=1),
        description="A pod on an Unhealthy or NoSchedule-tainted GPU moves within this long "
        "(at the quietest forecast moment) when no NoExecute taint sets an earlier deadline.",
    )
    gpu_grow_window: dt.timedelta = Field(
        default=dt.timedelta(hours=6),
        description="A claim swap that grows GPU memory, when not urgent, goes at the quietest "
        "forecast moment within this long; urgent (GPU memory used up) at once.",
    )
    gpu_shrink_after: dt.timedelta = Field(
        default=dt.timedelta(hours=24),
        description="A claim swap that shrinks GPU memory waits until the recommendation has "
        "allowed it continuously for this long.",
    )
    settle_timeout: dt.timedelta = Field(
        default=dt.timedelta(minutes=2),
        description="How long `--once` waits for the actions it started to settle.",
    )
