"""GPU health (pure): which of a pod's allocated devices are reported Unhealthy or tainted, by
when a `NoExecute` taint would have the pod deleted, and the claim template that moves the pod
off those devices.

Two signals, as upstream v1.37 gives them:
- the kubelet's `status.containerStatuses[].allocatedResourcesStatus` (KEP-4680): per claim
  (`claim:<name>[/<request>]`) each device's health, `Healthy`, `Unhealthy` or `Unknown`. The
  resource id is the device's first CDI id when its driver gives one, else
  `<driver>/<pool>/<device>`; a CDI id is matched when the claim's request has one device.
- device taints (`DeviceTaintRule`, `resource.k8s.io/v1`, or a slice's `devices[].taints`):
  `NoSchedule` keeps new claims off the device; `NoExecute` makes kube-controller-manager's
  device taint eviction controller delete the pods whose claims do not tolerate it, at the
  taint's `timeAdded` plus the smallest `tolerationSeconds` of the allocation's matching
  tolerations (a toleration without seconds tolerates it for ever).

A toleration also lets the scheduler allocate the tainted device again, and a device that is
only Unhealthy is not tainted at all, so the new template excludes the bad devices by their
`uuid` attribute.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridgescale.updater.gpu import Excluded, managed_template, template_base

Raw = Mapping[str, Any]
UNHEALTHY = "Unhealthy"
NO_EXECUTE = "NoExecute"
NO_SCHEDULE = "NoSchedule"
IDENTITY_ATTRIBUTE = "uuid"


@dataclass(frozen=True)
class Device:
    driver: str
    pool: str
    name: str

    @property
    def resource_id(self) -> str:
        return f"{self.driver}/{self.pool}/{self.name}"


@dataclass(frozen=True)
class BadDevice:
    device: Device
    why: str  # "reported Unhealthy", "tainted gpu.example/ecc=true:NoExecute"
    evicted_at: dt.datetime | None  # when a NoExecute taint would have the pod deleted


@dataclass(frozen=True)
class Migration:
    """Move one pod claim off its bad devices: a new template that excludes them."""

    pod_claim: str
    old_template: str
    bad: tuple[BadDevice, ...]
    template: dict[str, Any]

    @property
    def deadline(self) -> dt.datetime | None:
        times = [b.evicted_at for b in self.bad if b.evicted_at is not None]
        return min(times) if times else None

    @property
    def request(self) -> dict[str, Any]:
        return dict(self.template["spec"]["spec"]["devices"]["requests"][0]["exactly"])

    @property
    def excluded(self) -> frozenset[tuple[str, str]]:
        return frozenset((b.device.pool, b.device.name) for b in self.bad)

    def describe(self) -> str:
        reasons = "; ".join(f"{b.device.name} {b.why}" for b in self.bad)
        return f"claim {self.pod_claim}: {reasons} (template {self.old_template} replaced)"


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def pod_claim_names(pod: Raw) -> dict[str, str]:
    """The pod's claim name -> the ResourceClaim's name (generated from a template, or named)."""
    names = {
        str(s["name"]): str(s["resourceClaimName"])
        for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []
        if s.get("resourceClaimName")
    }
    for claim in (pod.get("spec") or {}).get("resourceClaims") or []:
        if claim.get("resourceClaimName"):
            names[str(claim["name"])] = str(claim["resourceClaimName"])
    return names


def _results(claim: Raw) -> list[Raw]:
    allocation = ((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}
    return list(allocation.get("results") or [])


def _device(result: Raw) -> Device:
    return Device(str(result.get("driver")), str(result.get("pool")), str(result.get("device")))


def unhealthy(pod: Raw, pod_claim: str, results: Sequence[Raw]) -> set[Device]:
    """The claim's devices the kubelet reports Unhealthy."""
    found: set[Device] = set()
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for entry in status.get("allocatedResourcesStatus") or []:
            name = str(entry.get("name", ""))
            claim, _, request = name.removeprefix("claim:").partition("/")
            if not name.startswith("claim:") or claim != pod_claim:
                continue
            mine = [r for r in results if not request or r.get("request") == request]
            for resource in entry.get("resources") or []:
                if resource.get("health") != UNHEALTHY:
                    continue
                by_id = [r for r in mine if _device(r).resource_id == resource.get("resourceID")]
                found.update(_device(r) for r in (by_id or (mine if len(mine) == 1 else [])))
    return found


def _matches(rule: Raw, device: Device) -> bool:
    selector = (rule.get("spec") or {}).get("deviceSelector")
    if not selector:
        return False
    wanted = {"driver": device.driver, "pool": device.pool, "device": device.name}
    return all(selector.get(k) in (None, v) for k, v in wanted.items())


def _published(device: Device, slices: Iterable[Raw]) -> Raw:
    """The device as its slice publishes it ({} when no slice has it)."""
    for item in slices:
        spec = item.get("spec") or {}
        pool = (spec.get("pool") or {}).get("name")
        if (spec.get("driver"), pool) == (device.driver, device.pool):
            for candidate in spec.get("devices") or []:
                if candidate.get("name") == device.name:
                    return dict(candidate)
    return {}


def taints(device: Device, rules: Iterable[Raw], slices: Iterable[Raw]) -> list[Raw]:
    """The device's NoSchedule and NoExecute taints, from rules and from its slice."""
    found = [dict((r.get("spec") or {}).get("taint") or {}) for r in rules if _matches(r, device)]
    found += [dict(t) for t in _published(device, slices).get("taints") or []]
    return [t for t in found if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE)]


def tainted_devices(slices: Sequence[Raw], rules: Sequence[Raw]) -> Excluded:
    """(pool, device) of every device with a NoSchedule or NoExecute taint: no new claim."""
    found = set()
    for item in slices:
        spec = item.get("spec") or {}
        pool = str((spec.get("pool") or {}).get("name"))
        for device in spec.get("devices") or []:
            if taints(Device(str(spec.get("driver")), pool, str(device["name"])), rules, [item]):
                found.add((pool, str(device["name"])))
    return frozenset(found)


def _tolerates(toleration: Raw, taint: Raw) -> bool:
    if toleration.get("effect") not in (None, "", taint.get("effect")):
        return False
    if toleration.get("key") not in (None, "", taint.get("key")):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return toleration.get("operator") in (None, "", "Equal") and toleration.get(
        "value", ""
    ) == taint.get("value", "")


def eviction_time(taint: Raw, tolerations: Sequence[Raw]) -> dt.datetime | None:
    """When the device taint eviction controller deletes a pod for this taint: None when never
    (not NoExecute, or tolerated without seconds)."""
    if taint.get("effect") != NO_EXECUTE:
        return None
    added = _time(taint.get("timeAdded")) or dt.datetime.now(dt.UTC)
    seconds = []
    for toleration in tolerations:
        if toleration.get("effect") == NO_EXECUTE and _tolerates(toleration, taint):
            if toleration.get("tolerationSeconds") is None:
                return None
            seconds.append(max(int(toleration["tolerationSeconds"]), 0))
    return added + dt.timedelta(seconds=min(seconds)) if seconds else added


def bad_devices(
    pod: Raw, pod_claim: str, claim: Raw, rules: Sequence[Raw], slices: Sequence[Raw]
) -> list[BadDevice]:
    """The claim's devices that are Unhealthy or tainted NoSchedule/NoExecute."""
    results = _results(claim)
    sick = unhealthy(pod, pod_claim, results)
    found = []
    for result in results:
        device = _device(result)
        why = ["reported Unhealthy"] if device in sick else []
        evicted_at = None
        for taint in taints(device, rules, slices):
            why.append(f"tainted {taint.get('key')}={taint.get('value', '')}:{taint['effect']}")
            at = eviction_time(taint, result.get("tolerations") or [])
            evicted_at = at if evicted_at is None or (at and at < evicted_at) else evicted_at
        if why:
            found.append(BadDevice(device, ", ".join(why), evicted_at))
    return found


def _identity(device: Device, slices: Sequence[Raw]) -> str | None:
    attributes = _published(device, slices).get("attributes") or {}
    value = (attributes.get(IDENTITY_ATTRIBUTE) or {}).get("string")
    return str(value) if value else None


def exclusions(bad: Sequence[BadDevice], slices: Sequence[Raw]) -> list[dict[str, Any]]:
    """CEL selectors that keep a request off the bad devices (CEL sees attributes, not names)."""
    selectors = []
    for item in bad:
        identity = _identity(item.device, slices)
        # TODO(a device without a `uuid` attribute): only its taint can keep it off.
        if identity is not None:
            attribute = f"device.attributes['{item.device.driver}'].{IDENTITY_ATTRIBUTE}"
            expression = f"{attribute} != '{identity}'"
            selectors.append({"cel": {"expression": expression}})
    return selectors


def plan_migrations(
    pod: Raw,
    templates: Mapping[str, Raw],
    claims: Mapping[str, Raw],
    *,
    rules: Sequence[Raw],
    slices: Sequence[Raw],
    workload: tuple[str, str],
) -> list[Migration]:
    """The migrations this pod needs; `claims` are ResourceClaims by name in its namespace."""
    planned = []
    names = pod_claim_names(pod)
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        pod_claim, old = str(entry["name"]), entry.get("resourceClaimTemplateName")
        claim = claims.get(names.get(pod_claim, ""))
        template = templates.get(str(old)) if old else None
        if claim is None or template is None:
            continue  # TODO(claims named directly, not from a template): not migrated yet
        bad = bad_devices(pod, pod_claim, claim, rules, slices)
        if bad:
            new = _without(template, bad, slices, workload, pod_claim)
            planned.append(Migration(pod_claim, str(old), tuple(bad), new))
    return planned


def _without(
    old: Raw, bad: Sequence[BadDevice], slices: Sequence[Raw], workload: tuple[str, str],
    pod_claim: str,
) -> dict[str, Any]:  # fmt: skip
    spec = copy.deepcopy(dict(old["spec"]))
    for request in spec["spec"]["devices"]["requests"]:
        exactly = request.get("exactly")
        if exactly is not None:
            have = exactly.get("selectors") or []
            exactly["selectors"] = have + [s for s in exclusions(bad, slices) if s not in have]
    return managed_template(spec, workload, pod_claim, template_base(workload[1], pod_claim))
