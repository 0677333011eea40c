"""Logging for every bridgescale process: text for people, JSON lines for machines.

A logger adapter per object carries its identity (namespace, kind, name, uid) into every line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

LogFormat = Literal["text", "json"]
IDENTITY_FIELDS = ("namespace", "kind", "name", "uid", "container")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in IDENTITY_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        identity = [str(getattr(record, f)) for f in ("namespace", "name") if hasattr(record, f)]
        prefix = f"[{'/'.join(identity)}] " if identity else ""
        record.message = record.getMessage()
        text = (
            f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {prefix}{record.message}"
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send bridgescale's logs to stderr in the chosen format; call once, at start."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kubernetes client logs every request at debug; keep it out of ours.
    logging.getLogger("kubernetes").setLevel(max(logging.INFO, root.level))
    logging.getLogger("urllib3").setLevel(logging.WARNING)


class ObjectLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose lines carry the identity of one Kubernetes object."""

    def __init__(self, logger: logging.Logger, identity: Mapping[str, str]) -> None:
        super().__init__(logger, dict(identity))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
