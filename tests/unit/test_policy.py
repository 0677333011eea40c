"""Annotations set a workload's policy; a bad one is reported and ignored, the rest applies."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgescale import policy
from bridgescale.policy import UpdateMode, policy_from_annotations


def test_every_annotation_applies() -> None:
    parsed, problems = policy_from_annotations(
        {
            policy.UPDATE_MODE: "InPlace",
            policy.MIN_ALLOWED: "cpu=100m, memory=256Mi",
            policy.MAX_ALLOWED: "cpu=4,memory=16Gi,gpu-memory=40Gi",
            policy.CONTROLLED_RESOURCES: "cpu,memory",
            policy.DEFERRAL_TIMEOUT: "1h30m",
            "app.kubernetes.io/name": "bridge",
        }
    )
    assert problems == []
    assert parsed.mode is UpdateMode.IN_PLACE
    assert parsed.min_allowed == {"cpu": 0.1, "memory": 256 * 1024**2}
    assert parsed.max_allowed["gpu-memory"] == 40 * 1024**3
    assert parsed.controlled == {"cpu", "memory"}
    assert parsed.deferral_timeout == dt.timedelta(hours=1, minutes=30)
    assert parsed.clamp("cpu", 8) == 4
    assert parsed.clamp("cpu", 0.01) == 0.1


def test_defaults_without_annotations() -> None:
    parsed, problems = policy_from_annotations(None)
    assert problems == []
    assert parsed.mode is UpdateMode.IN_PLACE_OR_RECREATE
    assert parsed.controlled == {"cpu", "memory", "gpu-memory"}
    assert parsed.clamp("memory", 123.0) == 123.0


@pytest.mark.parametrize(
    ("annotation", "value", "problem"),
    [
        (policy.UPDATE_MODE, "Recreate", "update mode must be one of Off, Initial"),
        (policy.MIN_ALLOWED, "cpu=lots", "cpu: 'lots' is not a Kubernetes quantity"),
        (policy.MAX_ALLOWED, "gpu=1", "'gpu=1' is not <resource>=<quantity>"),
        (policy.MAX_ALLOWED, "cpu=1,cpu=2", "cpu is given twice"),
        (policy.MIN_ALLOWED, "memory=-1Gi", "negative"),
        (policy.CONTROLLED_RESOURCES, "cpu,disk", "resources must be among"),
        (policy.DEFERRAL_TIMEOUT, "soon", "expected a duration"),
        (policy.DEFERRAL_TIMEOUT, "0s", "more than 0"),
        ("bridgescale.dev/updatemode", "Off", "unknown bridgescale annotation"),
    ],
)
def test_a_bad_annotation_is_named_and_the_rest_still_applies(
    annotation: str, value: str, problem: str
) -> None:
    other = policy.MAX_ALLOWED if annotation != policy.MAX_ALLOWED else policy.MIN_ALLOWED
    parsed, problems = policy_from_annotations({annotation: value, other: "memory=2Gi"})
    assert len(problems) == 1
    assert problems[0].annotation == annotation
    assert problem in problems[0].problem
    assert annotation in str(problems[0])
    bounds = parsed.max_allowed if other == policy.MAX_ALLOWED else parsed.min_allowed
    assert bounds == {"memory": 2 * 1024**3}


def test_inverted_bounds_are_reported_and_dropped() -> None:
    parsed, problems = policy_from_annotations(
        {policy.MIN_ALLOWED: "cpu=2,memory=1Gi", policy.MAX_ALLOWED: "cpu=1,memory=2Gi"}
    )
    assert [p.problem for p in problems] == [
        "cpu maximum is below the minimum; neither bound is used"
    ]
    assert "cpu" not in parsed.min_allowed
    assert "cpu" not in parsed.max_allowed
    assert parsed.max_allowed["memory"] == 2 * 1024**3


@given(
    st.dictionaries(
        st.sampled_from([*policy.KNOWN, "bridgescale.dev/other", "x/y"]), st.text(max_size=40)
    )
)
def test_any_annotations_give_a_usable_policy(annotations: dict[str, str]) -> None:
    parsed, problems = policy_from_annotations(annotations)
    assert isinstance(parsed.mode, UpdateMode)
    for resource in parsed.controlled:
        low = parsed.min_allowed.get(resource, 0.0)
        high = parsed.max_allowed.get(resource, float("inf"))
        assert 0 <= low <= high
    assert all(p.annotation in annotations for p in problems)
