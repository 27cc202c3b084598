"""`LOG_FORMAT`: plain text lines or one JSON object per line, with the job's context fields.

The livekit-agents CLI installs its own stdout handler (coloured under `dev`, JSON under
`start`); `apply_log_format` swaps that handler's formatter once the worker has started, so
`LOG_FORMAT` decides in every mode. Records from job processes carry `ctx.log_context_fields`
(room, room_id, job_id, user) as attributes; both formatters print them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["JsonFormatter", "TextFormatter", "apply_log_format", "record_extras"]

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The attributes a record carries beyond the standard ones (`extra=`, context fields)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record_extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = record_extras(record)
        if extras:
            fields = " ".join(
                f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in extras.items()
            )
            head, sep, tail = line.partition("\n")
            line = f"{head} [{fields}]{sep}{tail}"
        return line


def apply_log_format(log_format: Literal["text", "json"]) -> None:
    """Give the root logger's stream handlers the formatter `log_format` asks for."""
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(formatter)
