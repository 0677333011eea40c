"""The one-shot report behind `bridgescale recommend`: per container, what it has, what it
used, and what bridgescale recommends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridgescale.quantity import Resource
from bridgescale.recommender.cycle import NamespaceRead, WorkloadResult
from bridgescale.recommender.status import ContainerResult, quantities


@dataclass(frozen=True)
class ReportRow:
    namespace: str
    kind: str
    name: str
    container: str
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    usage: Mapping[Resource, float]  # peak over the history read
    result: ContainerResult


def _peaks(read: NamespaceRead, pods: Sequence[str], container: str) -> dict[Resource, float]:
    peaks: dict[Resource, float] = {}
    for (pod, name, resource), peak in read.peaks.items():
        if name == container and pod in pods:
            peaks[resource] = max(peaks.get(resource, 0.0), peak)
    return peaks


def report_rows(
    reads: Sequence[NamespaceRead], results: Mapping[str, Sequence[WorkloadResult]]
) -> list[ReportRow]:
    rows = []
    for read in reads:
        for workload_result in results.get(read.namespace, []):
            workload = workload_result.workload
            specs = {c.name: c for c in workload.sized()}
            for _, result in workload_result.containers:
                spec = specs[result.container]
                rows.append(
                    ReportRow(
                        namespace=read.namespace,
                        kind=workload.ref.kind,
                        name=workload.ref.name,
                        container=result.container,
                        requests=dict(spec.requests),
                        limits=dict(spec.limits),
                        usage=_peaks(read, workload.pods, result.container),
                        result=result,
                    )
                )
    return rows


def as_document(rows: Sequence[ReportRow]) -> dict[str, Any]:
    """The JSON/YAML report: `{"recommendations": [...]}`, quantities as strings."""
    return {
        "recommendations": [
            {
                "namespace": row.namespace,
                "kind": row.kind,
                "name": row.name,
                "container": row.container,
                "current": {"requests": dict(row.requests), "limits": dict(row.limits)},
                "usage": quantities(row.usage),
                "target": quantities(row.result.target),
                "lowerBound": quantities(row.result.lower_bound),
                "upperBound": quantities(row.result.upper_bound),
                "missing": dict(row.result.missing),
            }
            for row in rows
        ]
    }
