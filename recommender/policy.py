"""A container's policy: an existing VPA's `resourcePolicy` first, the workload's
`bridgescale.dev/...` annotations over it.

A VPA container policy applies to the container it names, else the `*` policy applies; with
`mode: Off` the container gets no recommendation, as with the VPA recommender.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bridgescale.policy import PolicyProblem, WorkloadPolicy, policy_from_annotations
from bridgescale.quantity import QuantityError, Resource, parse

VPA_RESOURCES: tuple[Resource, ...] = ("cpu", "memory")


@dataclass(frozen=True)
class ContainerPolicy:
    enabled: bool
    policy: WorkloadPolicy


def vpa_container_policy(
    resource_policy: Mapping[str, Any], container: str
) -> Mapping[str, Any] | None:
    """The VPA container policy for `container`: the one naming it, else the `*` one."""
    policies = [p for p in resource_policy.get("containerPolicies") or [] if isinstance(p, dict)]
    for wanted in (container, "*"):
        for policy in policies:
            if policy.get("containerName") == wanted:
                return policy
    return None


def _amounts(values: Any, where: str, problems: list[PolicyProblem]) -> dict[Resource, float]:
    amounts: dict[Resource, float] = {}
    for resource in VPA_RESOURCES:
        if not isinstance(values, Mapping) or resource not in values:
            continue
        try:
            amounts[resource] = parse(values[resource], resource)
        except QuantityError as error:
            problems.append(PolicyProblem(f"{where}.{resource}", str(values[resource]), str(error)))
    return amounts


def _from_vpa(
    vpa_name: str, policy: Mapping[str, Any], problems: list[PolicyProblem]
) -> WorkloadPolicy:
    where = f"VerticalPodAutoscaler {vpa_name} containerPolicies[{policy.get('containerName')}]"
    base = WorkloadPolicy(
        min_allowed=_amounts(policy.get("minAllowed"), f"{where}.minAllowed", problems),
        max_allowed=_amounts(policy.get("maxAllowed"), f"{where}.maxAllowed", problems),
    )
    controlled = policy.get("controlledResources")
    if isinstance(controlled, list):
        # The VPA knows cpu and memory only; GPU memory stays as the annotations say.
        kept = {r for r in controlled if r in VPA_RESOURCES} | {"gpu-memory"}
        base = replace(base, controlled=frozenset(kept))  # type: ignore[arg-type]
    return base


def container_policy(
    container: str,
    annotations: Mapping[str, str],
    vpa: tuple[str, Mapping[str, Any]] | None,
) -> tuple[ContainerPolicy, list[PolicyProblem]]:
    """The container's policy from the VPA (name, resourcePolicy) if any, then the annotations;
    with the problems found in either (each becomes an Event; the rest applies)."""
    problems: list[PolicyProblem] = []
    base = WorkloadPolicy()
    enabled = True
    if vpa is not None:
        vpa_name, resource_policy = vpa
        found = vpa_container_policy(resource_policy, container)
        if found is not None:
            enabled = found.get("mode", "Auto") != "Off"
            base = _from_vpa(vpa_name, found, problems)
    policy, annotation_problems = policy_from_annotations(annotations, base)
    return ContainerPolicy(enabled, policy), problems + annotation_problems
