"""Logging for the command line: one place decides level, format and stream.

Library code (keeper, tag store) only calls `logging.getLogger(__name__)`; what reaches the
operator is set here once. Lines go to stderr, which systemd's journal captures with its own
timestamps, so the text format carries none; `json` is for log shippers and keeps the time.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

FORMATS = ("text", "json")
ROOT = "tagjoin"


class _TextFormatter(logging.Formatter):
    """`keeper: handoff …`: the last part of the logger's name, then the message."""

    def format(self, record: logging.LogRecord) -> str:
        where = record.name.rsplit(".", 1)[-1]
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        line = f"{where}: {level}{record.getMessage()}"
        if record.exc_info:
            line += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time (Unix seconds), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(*, verbose: int = 0, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Route the `tagjoin` loggers to `stream` (stderr): INFO by default, DEBUG with -v."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger(ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    root.propagate = False
