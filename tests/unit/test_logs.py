"""Log lines carry the identity of the object they are about, in text and in JSON."""

from __future__ import annotations

import json
import logging

import pytest

from bridgescale.logs import JsonFormatter, ObjectLogger, TextFormatter


def _record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    logger = logging.getLogger("bridgescale.test")
    adapter = ObjectLogger(
        logger, namespace="bridges", kind="StatefulSet", name="lidar-bridge", uid="u-1"
    )
    with caplog.at_level(logging.INFO, logger="bridgescale.test"):
        adapter.info("resized %s cpu 1 -> 2", "router", extra={"k8s_object": {"container": "r"}})
    return caplog.records[-1]


def test_json_lines_carry_the_object(caplog: pytest.LogCaptureFixture) -> None:
    line = json.loads(JsonFormatter().format(_record(caplog)))
    assert line["message"] == "resized router cpu 1 -> 2"
    assert line["logger"] == "bridgescale.test"
    assert (line["namespace"], line["kind"], line["name"], line["uid"]) == (
        "bridges",
        "StatefulSet",
        "lidar-bridge",
        "u-1",
    )
    assert line["container"] == "r"


def test_text_lines_start_with_the_object(caplog: pytest.LogCaptureFixture) -> None:
    text = TextFormatter().format(_record(caplog))
    assert "INFO    [bridges/StatefulSet/lidar-bridge] resized router cpu 1 -> 2" in text
