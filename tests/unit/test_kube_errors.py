"""API errors are mapped once, by HTTP status, with the server's own message."""

from __future__ import annotations

import json

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from bridgescale import kube


def _exception(status: int, body: str | None, reason: str = "Reason") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = body
    return error


def test_status_body_message_is_kept() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "code": 429,
        }
    )
    error = kube.translate(_exception(429, body, "Too Many Requests"))
    assert isinstance(error, kube.TooManyRequests)
    assert error.status == 429
    assert error.message.startswith("Cannot evict pod")


@given(
    status=st.sampled_from([400, 401, 403, 404, 409, 410, 422, 429, 500, 503, 0]),
    body=st.one_of(st.none(), st.text(max_size=200), st.binary(max_size=50).map(repr)),
)
def test_any_answer_maps_to_a_kube_error(status: int, body: str | None) -> None:
    error = kube.translate(_exception(status, body))
    assert isinstance(error, kube.KubeError)
    expected = {
        403: kube.Forbidden,
        404: kube.NotFound,
        409: kube.Conflict,
        422: kube.Invalid,
        429: kube.TooManyRequests,
    }
    if status in expected:
        assert type(error) is expected[status]
    elif status == 0 or status >= 500:
        assert type(error) is kube.Unavailable
    else:
        assert type(error) is kube.KubeError


def test_no_answer_is_unavailable() -> None:
    pool = urllib3.HTTPConnectionPool("127.0.0.1")
    refused = urllib3.exceptions.MaxRetryError(pool, "/api/v1/pods", "Connection refused")
    with pytest.raises(kube.Unavailable, match="no answer from the API server"), kube.api_errors():
        raise refused
