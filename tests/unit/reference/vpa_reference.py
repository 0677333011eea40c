"""Writes vpa_reference.json: the VPA's recommendation for small series, worked out by hand.

Each case is simple enough to check on paper: every sample of a resource falls in one or two
histogram buckets, so a percentile is the end of one bucket, `0.001 * (1.05**(i + 1) - 1) / 0.05`
cores or `1e7 * (1.05**(i + 1) - 1) / 0.05` bytes, times the 15 % margin. This script computes
those bucket ends with plain arithmetic, independently of bridgescale.models.

Run `python tests/unit/reference/vpa_reference.py` to regenerate the file.
"""

import json
import math
from pathlib import Path

MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB


def bucket_end(value: float, first: float) -> float:
    index = math.floor(math.log(value * 0.05 / first + 1) / math.log(1.05))
    return first * (1.05 ** (index + 1) - 1) / 0.05


def cpu_end(cores: float) -> float:
    return bucket_end(cores, 0.001)


def bytes_end(size: float) -> float:
    return bucket_end(size, 1e7)


def bounds(p50: float, p90: float, p95: float, days: float, floor: float) -> dict[str, float]:
    margin = 1.15
    return {
        "target": max(p90 * margin, floor),
        "lower_bound": max(p50 * margin * (1 + 0.001 / days) ** -2, floor),
        "upper_bound": max(p95 * margin * (1 + 1 / days), floor),
    }


def cases() -> dict[str, dict[str, object]]:
    two_days = 2 * 1440  # one sample a minute, the last one a minute before the 2 days end
    days = (two_days - 1) / 1440  # confidence: the span, shorter than the count of samples
    constant_cpu = cpu_end(0.5)
    constant_memory = bytes_end(GIB)
    # 1 sample in 5 at 1.0 core, the rest at 0.2: p50 in the 0.2 bucket, p90 and p95 in 1.0's.
    return {
        "constant": {
            "minutes": two_days,
            "cpu": [0.5],
            "memory": [GIB],
            "oom_at_minute": None,
            "expected": {
                "cpu": bounds(constant_cpu, constant_cpu, constant_cpu, days, 0.025),
                "memory": bounds(
                    constant_memory, constant_memory, constant_memory, days, 250 * MIB
                ),
            },
        },
        "two_levels": {
            "minutes": two_days,
            "cpu": [0.2, 0.2, 0.2, 0.2, 1.0],
            "memory": [GIB],
            "oom_at_minute": None,
            "expected": {
                "cpu": bounds(cpu_end(0.2), cpu_end(1.0), cpu_end(1.0), days, 0.025),
            },
        },
        "floors": {
            "minutes": two_days,
            "cpu": [0.001],
            "memory": [20e6],
            "oom_at_minute": None,
            "expected": {
                "cpu": {"target": 0.025, "lower_bound": 0.025, "upper_bound": 0.025},
                "memory": {"target": 250 * MIB, "lower_bound": 250 * MIB, "upper_bound": 250 * MIB},
            },
        },
        # An OOM kill at a 1 GiB limit in the second window: its peak becomes
        # max(1 GiB + 100 MiB, 1.2 GiB); the first window keeps 1 GiB. Two peaks, the later
        # one weighs more (decay), so p50, p90 and p95 are all the OOM bucket.
        "oom": {
            "minutes": two_days,
            "cpu": [0.5],
            "memory": [GIB],
            "oom_at_minute": 1500,
            "expected": {
                "memory": bounds(
                    bytes_end(1.2 * GIB),
                    bytes_end(1.2 * GIB),
                    bytes_end(1.2 * GIB),
                    days,
                    250 * MIB,
                ),
            },
        },
    }


if __name__ == "__main__":
    target = Path(__file__).with_name("vpa_reference.json")
    target.write_text(json.dumps(cases(), indent=2) + "\n")
    print(f"wrote {target}")
