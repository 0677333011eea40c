"""Shared pytest options. Tests under tests/cluster/ run against the local cluster, started once
per session; tests under tests/unit/ need nothing running."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        help="leave the test cluster running after the session (faster reruns)",
    )
