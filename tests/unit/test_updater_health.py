"""GPU health: Unhealthy devices read from `allocatedResourcesStatus`, device taints from
DeviceTaintRules and slices, the taint eviction time as upstream computes it, and the template
that moves a pod off its bad devices."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bridgescale.updater.health import (
    Device,
    eviction_time,
    plan_migrations,
    tainted_devices,
    unhealthy,
)

DRIVER = "gpu.sim"
ADDED = "2026-12-03T12:00:00Z"
RESULT = {"request": "gpu", "driver": DRIVER, "pool": "node-0", "device": "mig-0"}
CLAIM = {"status": {"allocation": {"devices": {"results": [RESULT]}}}}
SLICES = [
    {
        "spec": {
            "driver": DRIVER,
            "pool": {"name": "node-0"},
            "devices": [
                {"name": f"mig-{i}", "attributes": {"uuid": {"string": f"MIG-{i}"}}}
                for i in range(3)
            ],
        }
    }
]
TEMPLATE = {
    "metadata": {"name": "mig-1g"},
    "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"count": 1}}]}}},
}


def _pod(health: str, resource_id: str = f"{DRIVER}/node-0/mig-0") -> dict[str, Any]:
    entry = {"name": "claim:gpu", "resources": [{"resourceID": resource_id, "health": health}]}
    return {
        "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "mig-1g"}]},
        "status": {
            "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "pc-gpu-x"}],
            "containerStatuses": [{"name": "c1", "allocatedResourcesStatus": [entry]}],
        },
    }


def _rule(effect: str, device: str = "mig-0") -> dict[str, Any]:
    selector = {"driver": DRIVER, "pool": "node-0", "device": device}
    taint = {"key": "ecc", "value": "true", "effect": effect, "timeAdded": ADDED}
    return {"spec": {"deviceSelector": selector, "taint": taint}}


def test_unhealthy_devices_by_resource_id_or_the_claims_only_device() -> None:
    mig0 = Device(DRIVER, "node-0", "mig-0")
    assert unhealthy(_pod("Unhealthy"), "gpu", [RESULT]) == {mig0}
    assert unhealthy(_pod("Healthy"), "gpu", [RESULT]) == set()
    assert unhealthy(_pod("Unknown"), "gpu", [RESULT]) == set()
    cdi = _pod("Unhealthy", resource_id="gpu.sim/mig=MIG-0")  # a CDI id names no device
    assert unhealthy(cdi, "gpu", [RESULT]) == {mig0}
    assert unhealthy(_pod("Unhealthy"), "other", [RESULT]) == set()


def test_a_noexecute_taint_evicts_at_time_added_plus_the_smallest_toleration() -> None:
    taint = _rule("NoExecute")["spec"]["taint"]
    added = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
    assert eviction_time(taint, []) == added
    tolerations = [
        {"key": "ecc", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 90},
    ]
    assert eviction_time(taint, tolerations) == added + dt.timedelta(seconds=90)
    forever = [{"key": "ecc", "operator": "Exists", "effect": "NoExecute"}]
    assert eviction_time(taint, forever) is None
    assert eviction_time(_rule("NoSchedule")["spec"]["taint"], []) is None


def test_a_migration_excludes_the_bad_device_and_keeps_the_earliest_deadline() -> None:
    (migration,) = plan_migrations(
        _pod("Unhealthy"),
        {"mig-1g": TEMPLATE},
        {"pc-gpu-x": CLAIM},
        rules=[_rule("NoExecute"), _rule("NoSchedule", device="mig-2")],
        slices=SLICES,
        workload=("Deployment", "pc"),
    )
    assert migration.excluded == {("node-0", "mig-0")}
    assert migration.deadline == dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
    assert migration.request["selectors"] == [
        {"cel": {"expression": "device.attributes['gpu.sim'].uuid != 'MIG-0'"}}
    ]
    assert migration.template["metadata"] == {
        "generateName": "pc-gpu-",
        "labels": {
            "bridgescale.dev/workload": "Deployment.pc",
            "bridgescale.dev/pod-claim": "gpu",
            "bridgescale.dev/managed": "true",
        },
    }
    assert "reported Unhealthy, tainted ecc=true:NoExecute" in migration.describe()


def test_healthy_untainted_devices_need_no_migration() -> None:
    found = plan_migrations(
        _pod("Healthy"),
        {"mig-1g": TEMPLATE},
        {"pc-gpu-x": CLAIM},
        rules=[_rule("None"), _rule("NoExecute", device="mig-1")],
        slices=SLICES,
        workload=("Deployment", "pc"),
    )
    assert found == []


def test_tainted_devices_take_no_new_claims() -> None:
    rules = [_rule("NoSchedule", device="mig-1"), _rule("None", device="mig-2")]
    assert tainted_devices(SLICES, rules) == {("node-0", "mig-1")}
