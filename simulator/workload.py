"""The synthetic workload of simulation bridges: usage as a pure function of time.

`usage(profile, seed, timestamps)` gives cpu (cores), memory and vram (bytes) for one container
at any Unix times, vectorised. Each value depends only on (profile, seed, timestamp): every
random draw is a hash of the seed, a stream name and the time slot, never a generator state,
so the node simulator can ask for "now" and backfill a week of history and get the same values
for the same instants, whatever the window.

A bridge's usage is the sum of
- a base level times a diurnal factor (sensor load follows the working day, UTC),
- step changes: the level is redrawn every `step_days` (a new sensor set, a new map),
- bursts: a slot (5 minutes) bursts with probability `burst_probability`,
- memory: a slow leak that grows until a restart every `leak_restart_days`,
- vram: point-cloud batches: a slot holds a batch with probability `gpu_batch_probability`,
  and a batch takes up to `gpu_batch_bytes` on top of the resident model.
A `constant` profile has none of these. A bridge has several containers (a router and a
telemetry sidecar by default), each with its own profile and stream of draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
SLOT = 300.0
DAY = 86400.0
GIB = 1024.0**3


@dataclass(frozen=True)
class ContainerProfile:
    cpu_cores: float = 0.5
    memory_bytes: float = 1 * GIB
    vram_bytes: float = 0.0
    diurnal_amplitude: float = 0.0  # 0.5: the working-day peak is 1.5x the level, night 0.5x
    diurnal_peak_hour: float = 14.0  # UTC; the trough is 12 hours later
    step_days: float = 0.0  # 0: no step changes
    step_spread: float = 0.0  # the level is redrawn within x(1 +- spread)
    burst_probability: float = 0.0
    burst_factor: float = 1.0  # cpu and memory in a burst, as a multiple of the level
    leak_bytes_per_day: float = 0.0
    leak_restart_days: float = 7.0
    gpu_batch_probability: float = 0.0
    gpu_batch_bytes: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "cpu_cores",
            "memory_bytes",
            "vram_bytes",
            "step_days",
            "leak_bytes_per_day",
            "gpu_batch_bytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in (
            "diurnal_amplitude",
            "step_spread",
            "burst_probability",
            "gpu_batch_probability",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.diurnal_peak_hour < 24:
            raise ValueError(f"diurnal_peak_hour must be in [0, 24), got {self.diurnal_peak_hour}")
        if self.leak_restart_days <= 0:
            raise ValueError(f"leak_restart_days must be > 0, got {self.leak_restart_days}")


CONSTANT = ContainerProfile()
ROUTER = ContainerProfile(
    cpu_cores=1.0,
    memory_bytes=2 * GIB,
    vram_bytes=3 * GIB,
    diurnal_amplitude=0.5,
    step_days=3.0,
    step_spread=0.4,
    burst_probability=0.02,
    burst_factor=2.5,
    leak_bytes_per_day=0.15 * GIB,
    leak_restart_days=5.0,
    gpu_batch_probability=0.05,
    gpu_batch_bytes=4 * GIB,
)
TELEMETRY = ContainerProfile(
    cpu_cores=0.1,
    memory_bytes=0.25 * GIB,
    diurnal_amplitude=0.3,
    burst_probability=0.01,
    burst_factor=1.5,
    leak_bytes_per_day=0.02 * GIB,
    leak_restart_days=9.0,
)
# A telemetry sidecar that shares the router's budget: a quarter of its size, busiest at night
# when it compacts and uploads what the router logged by day, so the two are partly
# anti-correlated (opposite diurnal phase, independent bursts).
NIGHT_TELEMETRY = replace(
    TELEMETRY,
    cpu_cores=0.3,
    memory_bytes=0.75 * GIB,
    diurnal_amplitude=0.6,
    diurnal_peak_hour=2.0,
    burst_probability=0.02,
    burst_factor=2.0,
)


@dataclass(frozen=True)
class BridgeProfile:
    containers: dict[str, ContainerProfile] = field(
        default_factory=lambda: {"router": ROUTER, "telemetry": TELEMETRY}
    )


SHARED_BUDGET = BridgeProfile({"router": ROUTER, "telemetry": NIGHT_TELEMETRY})


def _uniform(seed: int, stream: str, slot: npt.NDArray[np.int64]) -> FloatArray:
    """A uniform [0, 1) draw per (seed, stream, slot): a splitmix64 hash, no generator state."""
    key = np.uint64(hash_text(f"{seed}/{stream}"))
    with np.errstate(over="ignore"):
        z = slot.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    result: FloatArray = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return result


def hash_text(text: str) -> int:
    """A stable 64-bit hash of a text (Python's `hash` changes between runs)."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) % (1 << 64)
    return value


def usage(
    profile: ContainerProfile,
    seed: int,
    timestamps: FloatArray,
    load: float = 1.0,
    gpu_load: float = 1.0,
) -> dict[str, FloatArray]:
    """cpu (cores), memory and vram (bytes) of one container at each of `timestamps`.

    `load` multiplies the sensor load (the level that drives cpu, and memory a little), and
    `gpu_load` the point-cloud work on the GPU (vram): the inputs a scenario turns, such as
    the demo's load burst."""
    time = np.asarray(timestamps, dtype=np.float64)
    slot = np.floor(time / SLOT).astype(np.int64)
    level = _diurnal(profile, time) * _steps(profile, seed, time) * load
    burst = _uniform(seed, "burst", slot) < profile.burst_probability
    boost = np.where(burst, profile.burst_factor, 1.0)
    jitter = 0.9 + 0.2 * _uniform(seed, "jitter", slot)
    cpu = profile.cpu_cores * level * boost * jitter
    memory = profile.memory_bytes * (0.9 + 0.1 * level) * np.where(burst, boost, 1.0)
    memory = memory + _leak(profile, seed, time)
    batch = _uniform(seed, "gpu", slot) < profile.gpu_batch_probability
    spike = profile.gpu_batch_bytes * _uniform(seed, "gpu-size", slot) * batch
    vram = np.where(profile.vram_bytes > 0, (profile.vram_bytes + spike) * gpu_load, 0.0)
    return {"cpu": cpu, "memory": memory, "vram": vram}


def _diurnal(profile: ContainerProfile, time: FloatArray) -> FloatArray:
    # A sine peaking at `diurnal_peak_hour` UTC (14:00 by default, trough at 02:00).
    phase = 2 * np.pi * ((time % DAY) / DAY - (profile.diurnal_peak_hour - 6) / 24)
    result: FloatArray = 1.0 + profile.diurnal_amplitude * np.sin(phase)
    return result


def _steps(profile: ContainerProfile, seed: int, time: FloatArray) -> FloatArray:
    if profile.step_days <= 0:
        return np.ones_like(time)
    epoch = np.floor(time / (profile.step_days * DAY)).astype(np.int64)
    result: FloatArray = 1.0 + profile.step_spread * (2 * _uniform(seed, "step", epoch) - 1)
    return result


def _leak(profile: ContainerProfile, seed: int, time: FloatArray) -> FloatArray:
    period = profile.leak_restart_days * DAY
    offset = _uniform(seed, "leak-phase", np.zeros(1, np.int64))[0] * period
    age = (time + offset) % period
    result: FloatArray = profile.leak_bytes_per_day * age / DAY
    return result


def fleet(
    series: int, seed: int, bridge: BridgeProfile | None = None
) -> list[tuple[str, ContainerProfile, int]]:
    """`series` containers of bridges of varied sizes: (name, profile, seed) for each, named
    `bridge-NNNN/container`.

    Bridges have the containers of `bridge` (a router and a telemetry sidecar by default);
    about one bridge in ten is `constant` (an idle standby). Sizes spread over a decade
    (log-normal)."""
    if series < 1:
        raise ValueError(f"series must be >= 1, got {series}")
    rng = np.random.default_rng(seed)
    containers = (bridge or BridgeProfile()).containers
    result: list[tuple[str, ContainerProfile, int]] = []
    index = 0
    while len(result) < series:
        size = float(rng.lognormal(0.0, 0.7))
        standby = rng.random() < 0.1
        for name, profile in containers.items():
            scaled = CONSTANT if standby else _scaled(profile, size, rng)
            result.append((f"bridge-{index:04d}/{name}", scaled, seed * 100_003 + len(result)))
        index += 1
    return result[:series]


def _scaled(profile: ContainerProfile, size: float, rng: np.random.Generator) -> ContainerProfile:
    return replace(
        profile,
        cpu_cores=profile.cpu_cores * size,
        memory_bytes=profile.memory_bytes * size,
        vram_bytes=profile.vram_bytes * size,
        leak_bytes_per_day=profile.leak_bytes_per_day * size * float(rng.uniform(0, 2)),
        gpu_batch_bytes=profile.gpu_batch_bytes * size,
        burst_probability=min(1.0, profile.burst_probability * float(rng.uniform(0.5, 2))),
    )
