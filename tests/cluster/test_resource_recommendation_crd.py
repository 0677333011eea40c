"""The ResourceRecommendation CRD from deploy/ on the real API server: its schema (which takes any
status the recommender publishes, Hypothesis-generated, and refuses bad quantities), its status
subresource and the columns `kubectl get` prints."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bridgescale import kube
from bridgescale.policy import WorkloadPolicy
from bridgescale.recommender.fleet import ModelRecommendation
from bridgescale.recommender.status import cap, recommendation_status
from bridgescale.updater.recommendations import recommendation_from_json
from tests.unit.test_status_round_trip import POLICIES, model_recommendations

GROUP, VERSION, PLURAL = "bridgescale.dev", "v1alpha1", "resourcerecommendations"


def _recommendation(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ResourceRecommendation",
        "metadata": {"name": name},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name}},
    }


def _status(cpu: str | int) -> dict[str, Any]:
    return {
        "status": {
            "lastUpdateTime": "2026-12-03T10:00:00Z",
            "horizon": "24h",
            "containerRecommendations": [
                {
                    "containerName": "router",
                    "target": {"cpu": cpu, "memory": "512Mi", "gpu-memory": "10Gi"},
                    "lowerBound": {"cpu": "100m", "memory": "256Mi"},
                    "upperBound": {"cpu": "1", "memory": "1Gi"},
                    "uncappedTarget": {"cpu": cpu, "memory": "512Mi"},
                    "model": "bridgescale",
                    "confidence": 0.8,
                }
            ],
            "conditions": [
                {
                    "type": "RecommendationProvided",
                    "status": "True",
                    "reason": "Forecast",
                    "lastTransitionTime": "2026-12-03T10:00:00Z",
                }
            ],
        }
    }


def test_status_round_trip_and_printer_columns(
    api: client.ApiClient, crds: list[str], namespace: str
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _recommendation("bridge")
    )
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "bridge", _status("250m")
    )

    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "bridge")
    assert stored["status"]["containerRecommendations"][0]["target"]["gpu-memory"] == "10Gi"

    method, url, headers, body, post = api.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, headers, body, post)
    response.read()
    table = json.loads(response.data)
    columns = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    print(f"kubectl get rr: {row}")
    assert row["Kind"] == "StatefulSet"
    assert row["CPU"] == "250m"
    assert row["Memory"] == "512Mi"
    assert row["GPU-Memory"] == "10Gi"
    assert row["Model"] == "bridgescale"
    assert row["Provided"] == "True"


@pytest.mark.parametrize("garbage", ["lots", "-1", "1.2.3", -1])
def test_status_with_a_bad_quantity_is_refused(
    api: client.ApiClient, crds: list[str], namespace: str, garbage: str | int
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _recommendation("bridge")
    )
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "bridge", _status(garbage)
        )
    error = kube.translate(refused.value)
    assert isinstance(error, kube.Invalid)
    assert "target.cpu" in error.message


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(found=st.lists(model_recommendations(), min_size=1, max_size=3), policy=POLICIES)
def test_any_published_status_is_stored_and_read_back_unchanged(
    api: client.ApiClient, crds: list[str], namespace: str,
    found: list[ModelRecommendation], policy: WorkloadPolicy,
) -> None:  # fmt: skip
    results = [
        cap(f"c{i}", "bridgescale", f, policy, has_gpu_claim=True) for i, f in enumerate(found)
    ]
    status = recommendation_status(results, {}, dt.datetime.now(dt.UTC))
    custom = client.CustomObjectsApi(api)
    name = f"bridge-{uuid.uuid4().hex[:6]}"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _recommendation(name))

    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}
    )  # the schema accepts whatever the recommender publishes

    stored = cast(
        dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    )
    assert stored["status"]["containerRecommendations"] == status["containerRecommendations"]
    read = recommendation_from_json(stored)
    expected = recommendation_from_json({**stored, "status": status})
    assert read.containers == expected.containers
