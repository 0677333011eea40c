"""A recommendation goes from the model through the published status to the updater's reading of
it without losing or inventing anything: every amount the updater reads is the published one,
never below what the model said (rounded up, capped by the policy), bounds stay ordered, and a
status that cannot be read names its field instead of being half used."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgescale.policy import WorkloadPolicy
from bridgescale.quantity import MiB, Resource, parse
from bridgescale.recommender.fleet import ModelRecommendation
from bridgescale.recommender.status import cap, recommendation_status
from bridgescale.updater.recommendations import RecommendationProblem, recommendation_from_json

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AMOUNTS: dict[Resource, st.SearchStrategy[float]] = {
    "cpu": st.floats(min_value=0, max_value=1e4),
    "memory": st.floats(min_value=0, max_value=2.0**50),
    "gpu-memory": st.floats(min_value=0, max_value=2.0**40),
}


@st.composite
def model_recommendations(draw: st.DrawFn) -> ModelRecommendation:
    resources = draw(st.sets(st.sampled_from(list(AMOUNTS))))
    target = {r: draw(AMOUNTS[r]) for r in resources}
    lower = {r: v * draw(st.floats(0, 1)) for r, v in target.items()}
    upper = {r: v * draw(st.floats(1, 4)) for r, v in target.items()}
    return ModelRecommendation(target, lower, upper, confidence=draw(st.floats(0, 1)))


POLICIES = st.builds(
    WorkloadPolicy,
    max_allowed=st.fixed_dictionaries({}, optional={"cpu": AMOUNTS["cpu"]}),
    controlled=st.frozensets(st.sampled_from(list(AMOUNTS)), min_size=1),
)


def _object(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "deployment-router"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "router"}},
        "status": status,
    }


def _unit(resource: Resource) -> float:
    return 0.001 if resource == "cpu" else MiB


@given(st.lists(model_recommendations(), min_size=1, max_size=3), POLICIES, st.booleans())
def test_what_the_updater_reads_is_what_was_published(
    found: list[ModelRecommendation], policy: WorkloadPolicy, has_gpu_claim: bool
) -> None:
    results = [
        cap(f"c{i}", "bridgescale", f, policy, has_gpu_claim=has_gpu_claim)
        for i, f in enumerate(found)
    ]
    status = recommendation_status(results, {}, NOW)

    read = recommendation_from_json(_object(status))

    published = {e["containerName"]: e for e in status["containerRecommendations"]}
    assert set(read.containers) == {r.container for r in results if r.target}
    for result in results:
        if not result.target:
            continue
        container = read.containers[result.container]
        assert container.target == {
            r: parse(q, r) for r, q in published[result.container]["target"].items()
        }
        for resource, amount in result.target.items():
            noise = _unit(resource) * 1e-6  # rounding ignores float noise below this
            assert container.target[resource] >= amount - noise  # never rounded down
            assert container.target[resource] - amount < _unit(resource) + noise
            wanted = policy.clamp(resource, found[int(result.container[1:])].target[resource])
            assert container.target[resource] >= wanted - noise
            assert (container.target[resource] > 0) == (wanted > 0)
            low = container.lower_bound[resource]
            assert low <= container.target[resource] <= container.upper_bound[resource]


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"target": {"cpu": "1"}}, "containerName is missing"),
        ({"containerName": "c", "target": {"cpu": "lots"}}, "target.cpu"),
        ({"containerName": "c", "target": {"memory": "-1Gi"}}, "target.memory"),
        ({"containerName": "c", "target": {"memory": "1e999999"}}, "target.memory"),
        (
            {"containerName": "c", "target": {"cpu": "1"}, "upperBound": {"cpu": "NaN"}},
            "upperBound.cpu",
        ),
    ],
)
def test_an_unreadable_status_names_its_field(entry: dict[str, Any], named: str) -> None:
    status = {"containerRecommendations": [{"containerName": "ok", "target": {"cpu": "1"}}, entry]}
    with pytest.raises(RecommendationProblem, match=named.replace(".", r"\.")):
        recommendation_from_json(_object(status))
