"""`python -m bridgescale.simulator [--nodes N ...]`: run simulated kubelets until stopped."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bridgescale import kube, logs
from bridgescale.simulator.runner import Simulator
from bridgescale.simulator.settings import settings_from_args


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(argv)
    logs.configure(settings.log_level, settings.log_format)
    simulator = Simulator(settings, kube.new_client(settings.kubeconfig))

    def stop(_signal: int, _frame: FrameType | None) -> None:
        simulator.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    simulator.start()
    simulator.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
