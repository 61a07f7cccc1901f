"""structlog set-up for the whole process: console on a terminal, JSON lines otherwise.

Library modules only call ``structlog.get_logger(...)``; this is the one place that decides how
events are rendered. pykka's and aiohttp's stdlib loggers are routed through the same renderer.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

__all__ = ["LogFormat", "configure_logging", "demote_bad_http"]


LogFormat = Literal["auto", "console", "json"]


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(demote_bad_http)


def demote_bad_http(record: logging.LogRecord) -> bool:
    """aiohttp logs a client's malformed HTTP (bad request line, header too long, ...) as an
    error with a traceback, before any handler runs, and answers the client 400 itself; and
    again a body it cannot decode when it drains it after the handler has answered 400. That
    is the client's mistake, not the daemon's: keep one info line, without the traceback."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError | RequestPayloadError):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "bad HTTP from a client: %s", (redact(str(exc))[:300],)
        record.exc_info = record.exc_text = None
    return True


_SECRETS = re.compile(r"(?i)(token=|bearer\s+|authorization:\s*\S+\s+)[^&\s'\"\\]+")


def redact(text: str) -> str:
    """``text`` with every token value replaced: aiohttp quotes the raw request line and
    headers of a request it cannot parse, ``?token=`` and ``Authorization`` included."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}[redacted]", text)
