"""The demo's scenario: phases of load on the demo fleet, played in a few minutes of real time.

The load is a real input of the node simulator: the pod annotations
`sim.bridgescale.dev/load-scale` (sensor load: cpu, and memory a little) and
`sim.bridgescale.dev/gpu-load-scale` (GPU memory of point-cloud batches), read by its workload
model at every usage step (`bridgescale.simulator.usage`). The demo writes them on the pods of
each workload, phase by phase; a pod that replaces another gets them at the next tick.

Everything here is pure: which phase runs at a given moment, and which annotations a pod of a
workload should carry in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridgescale.simulator.usage import GPU_LOAD_SCALE_ANNOTATION, LOAD_SCALE_ANNOTATION


@dataclass(frozen=True)
class Phase:
    """A stretch of the scenario: its share of the length, and the load per workload (app label;
    a workload not named runs at its normal load)."""

    name: str
    share: float
    load: Mapping[str, float] = field(default_factory=dict)
    gpu_load: Mapping[str, float] = field(default_factory=dict)

    def annotations(self, app: str) -> dict[str, str | None]:
        """The simulator's load annotations for a pod of `app` in this phase; None removes one
        (the normal load), so the pods end the scenario as they began it."""
        return {
            LOAD_SCALE_ANNOTATION: _scale(self.load.get(app)),
            GPU_LOAD_SCALE_ANNOTATION: _scale(self.gpu_load.get(app)),
        }


def _scale(value: float | None) -> str | None:
    return None if value is None or value == 1.0 else f"{value:g}"


# Sized against the fleet's week of history (`bridgescale.simulator.workload`): a lidar router
# peaks near 2.5 cores in its bursts, so three times its sensor load is past anything the week
# held; the point-cloud router holds 3 GiB of model plus batches of up to 4 GiB, so at 3.5
# times the model alone (10.5 GiB) is past the 10 GiB of its MIG 1g.10gb slice, and all but the
# largest batches fit the 2g.20gb profile above it.
PHASES = (
    Phase("steady", 0.2),
    Phase("load burst", 0.35, load={"lidar-bridge": 3.0, "camera-bridge": 2.5}),
    Phase("point clouds on the GPU", 0.3, gpu_load={"pointcloud": 3.5}),
    Phase("calm", 0.15),
)


@dataclass(frozen=True)
class Schedule:
    """The phases laid out over `seconds` of real time, in order."""

    seconds: float
    phases: tuple[Phase, ...] = PHASES

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if not self.phases or any(phase.share <= 0 for phase in self.phases):
            raise ValueError("phases must be given, each with a share > 0")

    def bounds(self) -> list[tuple[float, float, Phase]]:
        """(start, end, phase) of each phase, in seconds from the start; shares are scaled to
        fill the length exactly."""
        total = sum(phase.share for phase in self.phases)
        result = []
        start = 0.0
        for phase in self.phases:
            end = start + self.seconds * phase.share / total
            result.append((start, end, phase))
            start = end
        return result

    def phase_at(self, elapsed: float) -> Phase | None:
        """The phase running `elapsed` seconds after the start; None before it or once over."""
        for start, end, phase in self.bounds():
            if start <= elapsed < end:
                return phase
        return None

    def remaining(self, elapsed: float) -> float:
        return max(0.0, self.seconds - elapsed)


def changes(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> dict[str, str | None]:
    """The annotations to patch so that a pod's `current` ones match `wanted` (None: absent)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}
