"""GPU memory through DRA claim swaps (pure).

A claim's spec is immutable, so a pod whose `gpu-memory` recommendation leaves the capacity of
its claim gets a new ResourceClaimTemplate, and a new pod that the webhook points at it:
- MIG-like partitions: the smallest profile in the ResourceSlices whose memory covers the
  recommendation (the template's profile selector is rewritten);
- consumable capacity on a shared GPU: `capacity.requests.memory`, rounded up to whole GiB.
Growing happens as soon as the slices can hold the new size; shrinking only when the
recommendation's upper bound fits the smaller size (the recommender's bound reflects sustained
use), so a short lull never costs a restart.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridgescale.quantity import GiB, QuantityError, format_bytes, parse
from bridgescale.updater.recommendations import Recommendation

Raw = Mapping[str, Any]
_PROFILE = re.compile(r"""\.profile\s*==\s*['"]([^'"]+)['"]""")
WORKLOAD_LABEL = "bridgescale.dev/workload"
POD_CLAIM_LABEL = "bridgescale.dev/pod-claim"
MANAGED_LABEL = "bridgescale.dev/managed"  # "true" on templates the updater made; only these go


@dataclass(frozen=True)
class Profile:
    name: str
    memory: float


@dataclass(frozen=True)
class ClaimSwap:
    pod_claim: str  # the pod's name for the claim
    old_template: str
    template: dict[str, Any]  # the new ResourceClaimTemplate
    before: float  # bytes of GPU memory
    after: float

    @property
    def grows(self) -> bool:
        return self.after > self.before

    def describe(self) -> str:
        return (
            f"claim {self.pod_claim}: gpu-memory {format_bytes(self.before)} -> "
            f"{format_bytes(self.after)} (template {self.old_template} replaced)"
        )

    @property
    def request(self) -> dict[str, Any]:
        return dict(self.template["spec"]["spec"]["devices"]["requests"][0]["exactly"])


def _memory(value: Any) -> float | None:
    try:
        return parse(value, "gpu-memory") if value is not None else None
    except QuantityError:
        return None


def _devices(slices: Iterable[Raw]) -> Iterable[tuple[Raw, Raw]]:
    for item in slices:
        for device in (item.get("spec") or {}).get("devices") or []:
            yield item, device


def mig_profiles(slices: Iterable[Raw]) -> list[Profile]:
    """The profiles the slices offer, smallest memory first."""
    found: dict[str, float] = {}
    for _, device in _devices(slices):
        profile = ((device.get("attributes") or {}).get("profile") or {}).get("string")
        memory = _memory(((device.get("capacity") or {}).get("memory") or {}).get("value"))
        if profile and memory is not None:
            found[profile] = memory
    return sorted((Profile(n, m) for n, m in found.items()), key=lambda p: (p.memory, p.name))


def _request(template: Raw) -> dict[str, Any] | None:
    requests = (((template.get("spec") or {}).get("spec") or {}).get("devices") or {}).get(
        "requests"
    ) or []
    exactly = requests[0].get("exactly") if len(requests) == 1 else None
    return dict(exactly) if isinstance(exactly, dict) else None


def _profile_of(request: Raw) -> str | None:
    for selector in request.get("selectors") or []:
        found = _PROFILE.search(str((selector.get("cel") or {}).get("expression", "")))
        if found:
            return found.group(1)
    return None


def wanted_gpu_memory(pod: Raw, claim: str, recommendation: Recommendation, bound: str) -> float:
    """The gpu-memory `bound` ("target" or "upper") summed over the containers using `claim`."""
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        claims = [c.get("name") for c in (container.get("resources") or {}).get("claims") or []]
        wanted = recommendation.containers.get(str(container.get("name")))
        if claim not in claims or wanted is None:
            continue
        if bound == "upper":  # no upper bound: no evidence of sustained low use
            total += wanted.upper_bound.get("gpu-memory", math.inf)
        else:
            total += wanted.target.get("gpu-memory", 0.0)
    return total


def _with_profile(selector: Raw, profile: str) -> dict[str, Any]:
    expression = str((selector.get("cel") or {}).get("expression", ""))
    if not _PROFILE.search(expression):
        return dict(selector)
    return {"cel": {"expression": _PROFILE.sub(f".profile == '{profile}'", expression)}}


def _worth_it(current: float, new: float, upper: float) -> bool:
    """Grow whenever the target needs it; shrink only when the upper bound fits too."""
    return new > current or (new < current and upper <= new)


def _new_profile(
    request: Raw, profile: str, slices: Sequence[Raw], target: float, upper: float
) -> tuple[float, float, dict[str, Any]] | None:
    profiles = mig_profiles(slices)
    current = next((p for p in profiles if p.name == profile), None)
    best = next((p for p in profiles if p.memory >= target), None)
    if current is None or best is None or not _worth_it(current.memory, best.memory, upper):
        return None
    selectors = [_with_profile(s, best.name) for s in request.get("selectors") or []]
    return current.memory, best.memory, {**request, "selectors": selectors}


def _new_size(
    request: Raw, slices: Sequence[Raw], target: float, upper: float
) -> tuple[float, float, dict[str, Any]] | None:
    """(current bytes, new bytes, new request), or None when the claim's size is right."""
    profile = _profile_of(request)
    if profile is not None:
        return _new_profile(request, profile, slices, target, upper)
    current = _memory(((request.get("capacity") or {}).get("requests") or {}).get("memory"))
    size = float(max(1, math.ceil(target / GiB)) * GiB)
    if current is None or not _worth_it(current, size, upper):
        return None
    return current, size, {**request, "capacity": {"requests": {"memory": format_bytes(size)}}}


def workload_label(kind: str, name: str) -> str:
    """The label value naming a workload on the claim templates made for it."""
    return f"{kind}.{name}"[:63]


def template_base(workload: str, claim: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{workload}-{claim}".lower())[:40].strip("-")


def template_name(workload: str, claim: str, size: float) -> str:
    return f"{template_base(workload, claim)}-{int(size // (1024**2))}mi"


def plan_claim_swaps(
    pod: Raw,
    recommendation: Recommendation,
    templates: Mapping[str, Raw],
    slices: Sequence[Raw],
    workload: tuple[str, str],
) -> list[ClaimSwap]:
    """The claim swaps this pod needs; `templates` by name, `workload` is (kind, name)."""
    swaps = []
    for claim in (pod.get("spec") or {}).get("resourceClaims") or []:
        old = claim.get("resourceClaimTemplateName")
        template = templates.get(str(old)) if old else None
        request = _request(template) if template else None
        if template is None or request is None:
            continue  # TODO(claims named directly, not from a template): not swapped yet
        name = str(claim["name"])
        target = wanted_gpu_memory(pod, name, recommendation, "target")
        upper = wanted_gpu_memory(pod, name, recommendation, "upper")
        if target <= 0:
            continue
        sized = _new_size(request, slices, target, upper)
        if sized is None:
            continue
        before, after, new_request = sized
        swaps.append(ClaimSwap(name, str(old), _template(template, workload, name, after,
                                                          new_request), before, after))  # fmt: skip
    return swaps


def _template(
    old: Raw, workload: tuple[str, str], claim: str, size: float, request: dict[str, Any]
) -> dict[str, Any]:
    spec = copy.deepcopy(dict(old["spec"]))
    spec["spec"]["devices"]["requests"][0]["exactly"] = request
    # A generated name: the newest template of a claim is the one new pods use.
    return managed_template(spec, workload, claim, template_name(workload[1], claim, size))


def managed_template(
    spec: dict[str, Any], workload: tuple[str, str], claim: str, name: str
) -> dict[str, Any]:
    """A ResourceClaimTemplate the updater makes for a workload's pod claim: labelled so that
    the webhook finds it and only the updater's own templates are ever deleted."""
    kind, workload_name = workload
    labels = {
        WORKLOAD_LABEL: workload_label(kind, workload_name),
        POD_CLAIM_LABEL: claim,
        MANAGED_LABEL: "true",
    }
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"generateName": name + "-", "labels": labels},
        "spec": spec,
    }


# --- capacity --------------------------------------------------------------------------------


def _consumed_by(claims: Iterable[Raw], leaving_pod: str) -> list[Raw]:
    """Allocation results of claims not reserved (only) for the pod that leaves."""
    results: list[Raw] = []
    for claim in claims:
        status = claim.get("status") or {}
        owners = {r.get("uid") for r in status.get("reservedFor") or []}
        if owners == {leaving_pod}:
            continue
        allocation = (status.get("allocation") or {}).get("devices") or {}
        results.extend(allocation.get("results") or [])
    return results


Excluded = frozenset[tuple[str, str]]  # (pool, device) a new claim may not get


def slices_can_hold(
    request: Raw,
    slices: Sequence[Raw],
    claims: Iterable[Raw],
    leaving_pod: str,
    excluded: Excluded = frozenset(),
) -> bool:
    """Whether some device in the slices, other than the `excluded` ones, can satisfy the new
    request now, counting what other claims hold (the leaving pod's claim counts as released)."""
    used = _consumed_by(claims, leaving_pod)
    profile = _profile_of(request)
    if profile is not None:
        return _mig_room(profile, slices, used, excluded)
    wanted = _memory(((request.get("capacity") or {}).get("requests") or {}).get("memory"))
    return wanted is not None and _shared_room(wanted, slices, used, excluded)


def _counters(slices: Sequence[Raw]) -> dict[tuple[str, str], dict[str, float]]:
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for item in slices:
        pool = str(((item.get("spec") or {}).get("pool") or {}).get("name"))
        for counter_set in (item.get("spec") or {}).get("sharedCounters") or []:
            totals[(pool, counter_set["name"])] = {
                k: _memory(v.get("value")) or 0.0 for k, v in counter_set["counters"].items()
            }
    return totals


def _consumes(device: Raw) -> list[tuple[str, dict[str, float]]]:
    return [
        (c["counterSet"], {k: _memory(v.get("value")) or 0.0 for k, v in c["counters"].items()})
        for c in device.get("consumesCounters") or []
    ]


def _mig_room(profile: str, slices: Sequence[Raw], used: Sequence[Raw], excluded: Excluded) -> bool:
    free = _counters(slices)
    taken = {(str(r.get("pool")), str(r.get("device"))) for r in used}
    devices = {
        (str(((s.get("spec") or {}).get("pool") or {}).get("name")), str(d["name"])): d
        for s, d in _devices(slices)
    }
    for (pool, name), device in devices.items():
        if (pool, name) in taken:
            for counter_set, amounts in _consumes(device):
                for key, value in amounts.items():
                    free.setdefault((pool, counter_set), {})[key] = (
                        free.get((pool, counter_set), {}).get(key, 0.0) - value
                    )
    for (pool, name), device in devices.items():
        attributes = device.get("attributes") or {}
        if (pool, name) in taken | excluded:
            continue
        if (attributes.get("profile") or {}).get("string") != profile:
            continue
        if all(
            free.get((pool, counter_set), {}).get(key, 0.0) >= value
            for counter_set, amounts in _consumes(device)
            for key, value in amounts.items()
        ):
            return True
    return False


def _shared_room(
    wanted: float, slices: Sequence[Raw], used: Sequence[Raw], excluded: Excluded
) -> bool:
    for item, device in _devices(slices):
        pool = str(((item.get("spec") or {}).get("pool") or {}).get("name"))
        if not device.get("allowMultipleAllocations") or (pool, str(device["name"])) in excluded:
            continue
        capacity = _memory(((device.get("capacity") or {}).get("memory") or {}).get("value"))
        held = sum(
            _memory((r.get("consumedCapacity") or {}).get("memory")) or 0.0
            for r in used
            if (str(r.get("pool")), str(r.get("device"))) == (pool, str(device["name"]))
        )
        if capacity is not None and capacity - held >= wanted:
            return True
    return False


def unused_templates(
    templates: Iterable[Raw], pods: Iterable[Raw], gone: Iterable[str] = ()
) -> list[str]:
    """Templates the updater made (labelled managed) that no pod uses and that are not the
    newest of their workload's claim (new pods get the newest) unless that workload is `gone`
    (workload label values)."""
    in_use = {
        str(claim.get("resourceClaimTemplateName"))
        for pod in pods
        for claim in (pod.get("spec") or {}).get("resourceClaims") or []
    }
    ours = [t for t in templates if managed_workload(t) is not None]
    newest: dict[tuple[str, str], tuple[str, str]] = {}
    for template in ours:
        labels, name = template["metadata"]["labels"], str(template["metadata"]["name"])
        key = (labels[WORKLOAD_LABEL], labels.get(POD_CLAIM_LABEL, ""))
        created = str(template["metadata"].get("creationTimestamp"))
        if key not in newest or (created, name) > newest[key]:
            newest[key] = (created, name)
    gone = set(gone)
    keep = {name for (workload, _), (_, name) in newest.items() if workload not in gone} | in_use
    return [str(t["metadata"]["name"]) for t in ours if t["metadata"]["name"] not in keep]


def managed_workload(template: Raw) -> str | None:
    """The workload label of a template the updater made; None for any other template."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_LABEL) != "true" or not labels.get(WORKLOAD_LABEL):
        return None
    return str(labels[WORKLOAD_LABEL])
