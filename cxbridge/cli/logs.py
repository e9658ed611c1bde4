"""Logging for the command line: timestamped lines (or JSON objects), secrets redacted, levels scoped to cxbridge.

The root logger stays at WARNING, so chatty third-party libraries (a Markdown parser logs every rule at DEBUG)
never flood the output; cxbridge's own loggers (``cxbridge.*`` and each plugin's ``cxbridge_<name>.*``) follow
``[cxbridge] log_level`` once the configuration is read, or DEBUG with ``--debug``, which also opens the HTTP
stack (urllib3) at DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from ..http.redact import install_redaction

FORMATS = ("text", "json")
OWN_PREFIXES = ("cxbridge",)
"""Logger names that are cxbridge's: the core (``cxbridge.``) and the plugins (``cxbridge_<name>``)."""
HTTP_LOGGERS = ("urllib3",)
STANDARD = frozenset(logging.LogRecord("x", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
"""The attributes every LogRecord has: anything else on a record came in through ``extra=`` and is kept in JSON."""


class TextFormatter(logging.Formatter):
    """``2026-12-07T09:00:00.123+00:00 INFO cxbridge.worker: job 4 done: ...`` (UTC, milliseconds)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every ``extra=`` field (job, system, ref...)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(debug: bool = False, log_format: str = "text") -> None:
    """Log to stderr (timestamped text, or JSON), redacted, unless something already set up logging (an
    application embedding cxbridge, a test runner): then its set-up is left as it is, and only redaction is added.

    cxbridge's loggers log at WARNING until the configuration's ``log_level`` applies (``apply_level``), or
    at DEBUG with ``--debug``.
    """
    global _ours
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        _ours = True
        apply_level("DEBUG" if debug else "WARNING")
        for name in HTTP_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    install_redaction(root)


_ours = False
"""Whether this process's logging was set up here (levels are then ours to set)."""


def apply_level(level: str) -> None:
    """Set cxbridge's loggers (the core's and every loaded plugin's package) to ``level``, when the logging set-up
    is the command line's own."""
    if not _ours:
        return
    names = {"cxbridge"} | {n.split(".", 1)[0] for n in list(sys.modules) if n.startswith("cxbridge_")}
    for name in names:
        logging.getLogger(name).setLevel(level)
