"""Shared pytest options. Tests under tests/cluster/ run against the local cluster, started once
per session; tests under tests/unit/ need nothing running."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        help="leave the test cluster running after the session (faster reruns)",
    )


CHECKED = "checked"


@pytest.fixture
def checked(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one thing a fault, bad-input or security test verified, with its figures; the lines
    of passing tests are printed under "checked" in the terminal summary."""

    def record(what: str) -> None:
        request.node.user_properties.append((CHECKED, what))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for key, value in report.user_properties
        if key == CHECKED
    ]
    if lines:
        terminalreporter.section("checked")
        for line in lines:
            terminalreporter.write_line(line)
