"""Processes of the local cluster: started detached, recorded in the state folder, stopped for
good. The record survives the command that started them, so `dev down` and `dev status` work
from any later shell."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD = "processes.json"


def _stat(pid: int) -> tuple[str, int] | None:
    """State letter and start time (clock ticks since boot) of a live pid, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    # After the command name: state is field 3 of stat(5), starttime field 22.
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid: int
    command: list[str]
    log: str
    started: int  # the process's start time in clock ticks since boot: a reused pid differs

    def is_running(self) -> bool:
        """True while the recorded process is alive (not a zombie, not a reused pid)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] != "Z" and stat[1] == self.started


class ProcessSupervisor:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.logs_dir = state_dir / "logs"

    @property
    def _record_path(self) -> Path:
        return self.state_dir / RECORD

    def recorded(self) -> list[ManagedProcess]:
        if not self._record_path.is_file():
            return []
        return [ManagedProcess(**entry) for entry in json.loads(self._record_path.read_text())]

    def _save(self, processes: Sequence[ManagedProcess]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temporary = self._record_path.with_suffix(".tmp")
        temporary.write_text(json.dumps([asdict(process) for process in processes], indent=2))
        temporary.replace(self._record_path)

    def find(self, name: str) -> ManagedProcess | None:
        return next((p for p in self.recorded() if p.name == name and p.is_running()), None)

    def start(
        self, name: str, command: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start `command` in a session of its own, its output appended to logs/<name>.log."""
        running = self.find(name)
        if running:
            return running
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as output:
            child = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        stat = _stat(child.pid)
        started = stat[1] if stat else -1
        process = ManagedProcess(name, child.pid, list(command), str(log), started)
        others = [p for p in self.recorded() if p.name != name]
        self._save([*others, process])
        return process

    def stop(self, name: str, timeout: float = 15.0) -> bool:
        """Stop one process (and its process group); True if it was running."""
        processes = self.recorded()
        target = next((p for p in processes if p.name == name), None)
        if target is None:
            return False
        was_running = _terminate(target, timeout)
        self._save([p for p in processes if p.name != name])
        return was_running

    def stop_all(self, timeout: float = 15.0) -> list[str]:
        """Stop every recorded process, newest first; the names of those that were running."""
        stopped = [p.name for p in reversed(self.recorded()) if _terminate(p, timeout)]
        self._save([])
        return stopped


def _terminate(process: ManagedProcess, timeout: float) -> bool:
    if not process.is_running():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running():
            return True
        _reap(process.pid)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    while process.is_running():
        _reap(process.pid)
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
