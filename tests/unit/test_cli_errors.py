"""A setup mistake (a kubeconfig that does not exist) is told in one clear line and a non-zero
exit, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", [["updater", "--once"], ["recommender", "--once"]])
def test_a_missing_kubeconfig_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "bridgescale", *command, "--kubeconfig", str(missing)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"ERROR   cannot use the kubeconfig {missing}" in line
