"""Claim swaps: the smallest MIG profile or shared capacity covering the gpu-memory
recommendation, shrinking only when the upper bound fits, and room checked in the slices."""

from __future__ import annotations

from typing import Any

from bridgescale.quantity import GiB
from bridgescale.updater.gpu import plan_claim_swaps, slices_can_hold, unused_templates
from bridgescale.updater.recommendations import ContainerRecommendation, Recommendation

PROFILES = (("1g.10gb", 1, "10Gi", 7), ("2g.20gb", 2, "20Gi", 3), ("7g.80gb", 7, "80Gi", 1))
SELECTOR = "device.attributes['gpu.sim'].profile == '{}'"


def _mig_slices() -> list[dict[str, Any]]:
    counters = {
        "name": "gpu-0",
        "counters": {"compute": {"value": "7"}, "memory": {"value": "80Gi"}},
    }
    devices = [
        {
            "name": f"{name}-{i}",
            "attributes": {"profile": {"string": name}},
            "capacity": {"memory": {"value": memory}},
            "consumesCounters": [
                {
                    "counterSet": "gpu-0",
                    "counters": {"compute": {"value": str(compute)}, "memory": {"value": memory}},
                }
            ],
        }
        for name, compute, memory, count in PROFILES
        for i in range(count)
    ]
    pool = {"name": "node-0"}
    return [
        {"spec": {"pool": pool, "sharedCounters": [counters]}},
        {"spec": {"pool": pool, "devices": devices}},
    ]


def _template(name: str, exactly: dict[str, Any]) -> dict[str, Any]:
    requests = [{"name": "gpu", "exactly": exactly}]
    return {"metadata": {"name": name}, "spec": {"spec": {"devices": {"requests": requests}}}}


def _mig(profile: str) -> dict[str, Any]:
    return {
        "deviceClassName": "mig",
        "selectors": [{"cel": {"expression": SELECTOR.format(profile)}}],
    }


POD = {
    "spec": {
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "old"}],
        "containers": [{"name": "c1", "resources": {"claims": [{"name": "gpu"}]}}],
    }
}


def _recommendation(target: float, upper: float | None = None) -> Recommendation:
    bounds = {"gpu-memory": upper} if upper is not None else {}
    container = ContainerRecommendation("c1", {"gpu-memory": target}, upper_bound=bounds)
    return Recommendation("ns", "rr", "Deployment", "pointcloud", {"c1": container})


def _swaps(template: dict[str, Any], recommendation: Recommendation) -> list[Any]:
    templates = {"old": template}
    return plan_claim_swaps(POD, recommendation, templates, _mig_slices(), ("Deployment", "pc"))


def test_grows_to_the_smallest_profile_that_covers_the_target() -> None:
    (swap,) = _swaps(_template("old", _mig("1g.10gb")), _recommendation(15 * GiB))
    assert swap.after == 20 * GiB
    expression = swap.request["selectors"][0]["cel"]["expression"]
    assert expression == SELECTOR.format("2g.20gb")
    assert swap.template["metadata"]["labels"] == {
        "bridgescale.dev/workload": "Deployment.pc",
        "bridgescale.dev/pod-claim": "gpu",
        "bridgescale.dev/managed": "true",
    }


def test_shrinks_only_when_the_upper_bound_fits_the_smaller_profile() -> None:
    big = _template("old", _mig("7g.80gb"))
    assert _swaps(big, _recommendation(5 * GiB)) == []  # no upper bound: no evidence
    assert _swaps(big, _recommendation(5 * GiB, upper=30 * GiB)) == []
    (swap,) = _swaps(big, _recommendation(5 * GiB, upper=8 * GiB))
    assert swap.after == 10 * GiB


def test_shared_capacity_rounds_up_to_whole_gib() -> None:
    shared = _template(
        "old", {"deviceClassName": "shared", "capacity": {"requests": {"memory": "4Gi"}}}
    )
    (swap,) = _swaps(shared, _recommendation(5.5 * GiB))
    assert swap.request["capacity"] == {"requests": {"memory": "6Gi"}}


def test_slices_hold_a_profile_only_while_the_counters_last() -> None:
    whole = {"pool": "node-0", "device": "7g.80gb-0"}
    taken = [
        {
            "status": {
                "reservedFor": [{"uid": "other"}],
                "allocation": {"devices": {"results": [whole]}},
            }
        }
    ]
    assert slices_can_hold(_mig("2g.20gb"), _mig_slices(), [], "me")
    assert not slices_can_hold(_mig("2g.20gb"), _mig_slices(), taken, "me")
    mine = [
        {
            "status": {
                "reservedFor": [{"uid": "me"}],
                "allocation": {"devices": {"results": [whole]}},
            }
        }
    ]
    assert slices_can_hold(_mig("2g.20gb"), _mig_slices(), mine, "me")  # released on recreate


def test_only_templates_made_by_the_updater_and_unused_are_cleaned_up() -> None:
    labels = {
        "bridgescale.dev/workload": "Deployment.pc",
        "bridgescale.dev/pod-claim": "gpu",
        "bridgescale.dev/managed": "true",
    }
    unmanaged = {k: v for k, v in labels.items() if k != "bridgescale.dev/managed"}
    templates = [
        {"metadata": {"name": "theirs"}},
        {"metadata": {"name": "labelled", "labels": unmanaged}},
        {"metadata": {"name": "a", "labels": labels, "creationTimestamp": "2026-12-03T10:00:00Z"}},
        {"metadata": {"name": "b", "labels": labels, "creationTimestamp": "2026-12-03T11:00:00Z"}},
        {"metadata": {"name": "c", "labels": labels, "creationTimestamp": "2026-12-03T09:00:00Z"}},
    ]
    pods = [{"spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "c"}]}}]
    assert unused_templates(templates, pods) == ["a"]  # b is the newest: new pods get it
    assert unused_templates(templates, pods, gone={"Deployment.pc"}) == ["a", "b"]
    assert unused_templates(templates, [], gone={"Deployment.pc"}) == ["a", "b", "c"]


def test_room_is_found_only_on_devices_not_excluded() -> None:
    free = _mig_slices()
    assert slices_can_hold(_mig("7g.80gb"), free, [], "me")
    assert not slices_can_hold(
        _mig("7g.80gb"), free, [], "me", frozenset({("node-0", "7g.80gb-0")})
    )
