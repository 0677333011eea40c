"""`bridgescale settings`: every setting of every part, with its environment variable, default
and meaning, as Markdown (`docs/settings.md` is this command's output)."""

from __future__ import annotations

import argparse
import datetime as dt
import enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from bridgescale.history import PrometheusSettings
from bridgescale.localcluster.settings import LocalClusterSettings
from bridgescale.recommender.settings import RecommenderSettings
from bridgescale.simulator.settings import SimulatorSettings
from bridgescale.updater.settings import UpdaterSettings

SECTIONS: tuple[tuple[str, type[BaseSettings], str], ...] = (
    ("Prometheus", PrometheusSettings, "Where the recommender (and the updater's peak window) "
     "read usage history."),
    ("Recommender", RecommenderSettings, "`bridgescale recommender` and `recommend`; flags "
     "override these."),
    ("Updater", UpdaterSettings, "`bridgescale updater`; read once at start."),
    ("Local cluster", LocalClusterSettings, "`bridgescale dev` and `bridgescale demo`."),
    ("Node simulator", SimulatorSettings, "`python -m bridgescale.simulator`, which `dev up` "
     "starts."),
)  # fmt: skip


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "settings", help="print every setting with its environment variable and default"
    )
    parser.set_defaults(handler=_run)


def _run(arguments: argparse.Namespace) -> int:
    del arguments
    print(reference(), end="")
    return 0


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed at start"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return f"`{value}`"


def _duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"`{seconds // size}{unit}`"
    return f"`{seconds}s`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def reference() -> str:
    """The settings reference as Markdown."""
    lines = [
        "# Settings",
        "",
        "Every setting is read from the environment variable shown (flags, where a command has",
        "them, take precedence). Durations take ISO 8601 (`PT5M`) or a number of seconds.",
        "This page is the output of `bridgescale settings`; a test keeps it in step with the",
        "code.",
    ]
    for title, settings, note in SECTIONS:
        prefix = str(settings.model_config.get("env_prefix", ""))
        lines += [
            "",
            f"## {title}",
            "",
            note,
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
        ]
        for name, field in settings.model_fields.items():
            variable = f"`{prefix}{name.upper()}`"
            lines.append(f"| {variable} | {_default(field)} | {_cell(field.description or '')} |")
    return "\n".join(lines) + "\n"
