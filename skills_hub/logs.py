"""Log lines: one JSON object a line (time, level, logger, message, the request id inside a
request, the exception, any extra fields) or plain text for a terminal, for our loggers and
uvicorn's alike. `dict_config` is handed to uvicorn, which applies it in every worker."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from .config import Settings

# The id of the request being answered (web/observability.py sets it for each request);
# sync endpoints run in a thread that carries a copy of the context, so they see it too.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# What every LogRecord has; anything else on a record came as `extra=` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "color_message", "taskName"}
_encode = json.JSONEncoder(default=str).encode  # built once: json.dumps(default=) is not


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _request_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object a line; newlines in a message or traceback are escaped, so a line is
    always one record (a message cannot forge another)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        request_id = _request_id(record)
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encode(entry)


class TextFormatter(logging.Formatter):
    """`time level logger: message [request id]`, for a person at a terminal. Line breaks
    in a message are escaped (a path may hold an encoded one); a traceback keeps its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = _request_id(record)
        return f"{line} [{request_id}]" if request_id else line


def resolved_format(settings: Settings, stream: TextIO | None = None) -> str:
    """`json` or `text`: `auto` is json unless the stream (stderr) is a terminal."""
    if settings.log_format != "auto":
        return settings.log_format
    stream = stream or sys.stderr
    return "text" if stream.isatty() else "json"


def dict_config(settings: Settings, stream: TextIO | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` that writes every log line to stderr in the settings'
    format: the root logger's handler, and uvicorn's and ours propagating to it."""
    formatter = {"json": JsonFormatter, "text": TextFormatter}[resolved_format(settings, stream)]
    passed_on = {"handlers": [], "propagate": True, "level": "INFO"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hub": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "hub",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {name: dict(passed_on) for name in
                    ("uvicorn", "uvicorn.error", "uvicorn.access", "skills_hub")},
    }


def configure(settings: Settings) -> None:
    """Install the settings' log format for the root, uvicorn and skills_hub loggers."""
    logging.config.dictConfig(dict_config(settings))
