"""The generic usage CSV: `series,timestamp,cpu,memory[,vram]`, gzip or plain.

`timestamp` is Unix seconds, `cpu` mean cores over the sample interval, `memory` and `vram`
bytes. Rows are grouped by series and sorted by time within each series.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bridgescale.models.backtest import LimitChange, UsageTrace

REQUIRED_COLUMNS = ("series", "timestamp", "cpu", "memory")
OPTIONAL_COLUMNS = ("vram",)


class TraceError(ValueError):
    """The file is not a usage trace; the message names the row or column at fault."""


def read_usage_csv(path: Path) -> UsageTrace:
    try:
        frame = pd.read_csv(path, dtype={"series": str}, compression="infer")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: cannot read as CSV: {error}") from error
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise TraceError(f"{path}: missing column(s) {missing}; expected {REQUIRED_COLUMNS}")
    return trace_from_frame(frame, str(path))


def trace_from_frame(frame: pd.DataFrame, origin: str = "trace") -> UsageTrace:
    resources = ["cpu", "memory", *[c for c in OPTIONAL_COLUMNS if c in frame.columns]]
    for column in ["timestamp", *resources]:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise TraceError(f"{origin}: column {column!r} is not numeric")
    codes, names = pd.factorize(frame["series"], sort=False)
    if (codes < 0).any():
        raise TraceError(f"{origin}: column 'series' is empty in row {int(np.argmin(codes)) + 2}")
    if (np.diff(codes) < 0).any() or len(names) != len(np.unique(codes)):
        raise TraceError(f"{origin}: rows are not grouped by series")
    timestamp = frame["timestamp"].to_numpy(dtype=float)
    backwards = (np.diff(timestamp) <= 0) & (np.diff(codes) == 0)
    if backwards.any():
        row = int(np.argmax(backwards)) + 3
        raise TraceError(f"{origin}: row {row}: timestamp not after the previous row's")
    usage = {r: frame[r].to_numpy(dtype=float) for r in resources}
    return UsageTrace([str(n) for n in names], codes.astype(np.int64), timestamp, usage)


def write_usage_csv(path: Path, trace: UsageTrace) -> None:
    frame = pd.DataFrame(
        {
            "series": np.asarray(trace.series, dtype=object)[trace.container],
            "timestamp": trace.timestamp.astype(np.int64),
        }
    )
    for resource in trace.resources:
        values = trace.usage[resource]
        frame[resource] = (
            values.round(6) if resource == "cpu" else pd.Series(values.round(0)).astype("Int64")
        )
    frame.to_csv(path, index=False, compression="infer")


def write_limit_changes(
    path: Path, changes: Iterable[tuple[str, LimitChange]], with_recommender: bool
) -> None:
    rows = []
    for recommender, change in changes:
        row = {
            "series": change.series,
            "timestamp": change.timestamp,
            "resource": change.resource,
            "limit": change.limit,
        }
        rows.append({"recommender": recommender, **row} if with_recommender else row)
    columns = ["series", "timestamp", "resource", "limit"]
    pd.DataFrame(rows, columns=["recommender", *columns] if with_recommender else columns).to_csv(
        path, index=False, compression="infer", float_format="%.10g"
    )
