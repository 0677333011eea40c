"""Logging for every bridgescale process: text for people, JSON lines for machines.

A logger adapter per object carries its identity (namespace, kind, name, uid) into every line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

LogFormat = Literal["text", "json"]
# The object a line is about travels in one record attribute: a LogRecord has a `name` of its
# own (the logger's), so the object's name cannot be a record field of that name.
OBJECT = "k8s_object"


def _identity(record: logging.LogRecord) -> dict[str, str]:
    identity: dict[str, str] = getattr(record, OBJECT, {})
    return identity


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_identity(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        identity = _identity(record)
        path = "/".join(identity[k] for k in ("namespace", "kind", "name") if k in identity)
        prefix = f"[{path}] " if path else ""
        when = self.formatTime(record, "%H:%M:%S")
        text = f"{when} {record.levelname:<7} {prefix}{record.getMessage()}"
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
    """A logger whose lines carry the identity of one Kubernetes object: its namespace, kind,
    name and uid (and a container, where the line is about one)."""

    def __init__(self, logger: logging.Logger, **identity: str | None) -> None:
        self.identity = {key: value for key, value in identity.items() if value}
        super().__init__(logger, {OBJECT: self.identity})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.get("extra") or {})
        kwargs["extra"] = {**extra, OBJECT: {**self.identity, **extra.get(OBJECT, {})}}
        return msg, kwargs
