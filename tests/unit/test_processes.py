"""Processes started by the local cluster are recorded, found again, and stopped for good."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bridgescale.localcluster.processes import ProcessSupervisor

SLEEP = shutil.which("sleep") or "/bin/sleep"


def test_start_records_and_stop_all_ends_the_processes(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    first = supervisor.start("first", [SLEEP, "300"])
    second = supervisor.start("second", [SLEEP, "300"])

    # A second supervisor, as in a later `dev status`, reads the same record.
    again = ProcessSupervisor(tmp_path)
    assert {p.name for p in again.recorded()} == {"first", "second"}
    assert again.find("first") == first
    assert supervisor.start("first", [SLEEP, "300"]).pid == first.pid  # not started twice

    assert sorted(again.stop_all(timeout=5)) == ["first", "second"]
    assert not first.is_running()
    assert not second.is_running()
    assert again.recorded() == []


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    stubborn = supervisor.start(
        "stubborn", ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    )
    assert supervisor.stop("stubborn", timeout=0.5)
    assert not stubborn.is_running()


def test_output_goes_to_the_log(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    process = supervisor.start("echo", ["/bin/sh", "-c", "echo hello from the log; sleep 300"])
    try:
        log = Path(process.log)
        for _ in range(50):
            if log.read_text():
                break
            time.sleep(0.05)
        assert log.read_text() == "hello from the log\n"
    finally:
        supervisor.stop_all(timeout=5)
