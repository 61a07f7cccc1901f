"""structlog set-up for the whole process: console on a terminal, JSON lines otherwise.

Library modules only call ``structlog.get_logger(...)``; this is the one place that decides how
events are rendered. pykka's and aiohttp's stdlib loggers are routed through the same renderer.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from actors.schema import Settings

__all__ = ["LogFormat", "LogLevel", "LogSettings", "RepeatLimiter", "configure_logging",
           "demote_bad_http", "set_level"]


LogFormat = Literal["auto", "console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class LogSettings(Settings):
    """``[log]``: ``$HIVE_LOG_LEVEL``, ``--log-level`` and the others override it as any key."""

    level: LogLevel = "info"  # a SIGHUP applies a new one at once
    format: LogFormat = "auto"  # console on a terminal, JSON lines otherwise; fixed at start
    access: bool = False  # one line per HTTP request (no query string: it may hold a token)


# Our events pass one threshold, which a reload changes in place; the loggers modules cached
# on first use keep working (a level baked into each of them would not change).
_threshold = [logging.INFO]
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
                  "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
                  "exception": logging.ERROR, "critical": logging.CRITICAL}


def _by_level(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _METHOD_LEVELS.get(method, logging.INFO) < _threshold[0]:
        raise structlog.DropEvent
    return event


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that knows the name it was asked for (``structlog.get_logger("hive")``),
    so that every line says which module wrote it (``logger``)."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _named_logger(*args: Any) -> _NamedPrintLogger:
    return _NamedPrintLogger(str(args[0]) if args else "hive")


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    limiter = RepeatLimiter()
    structlog.configure(
        processors=[_by_level, limiter.processor, *shared, structlog.processors.format_exc_info,
                    renderer],
        logger_factory=_named_logger,
        # configured twice (before the file is read, then from it): a logger cached by its
        # first use would keep the first renderer
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=shared))
    handler.addFilter(limiter.filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(demote_bad_http)


def set_level(level: str) -> None:
    """The minimum level logged from now on, ours and the libraries' (never below info for
    those: their debug lines are for their own developers)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    _threshold[0] = numeric
    logging.getLogger().setLevel(max(numeric, logging.INFO))


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


def _any_spelling(text: str) -> str:
    """A pattern for ``text`` as a URL may spell it: each character as itself or
    percent-encoded, once or more (``%74``, ``%2574``), in either case."""
    def one(ch: str) -> str:
        codes = sorted({f"{ord(ch.lower()):02x}", f"{ord(ch.upper()):02x}"})
        return f"(?:{re.escape(ch)}|%(?:25)*(?:{'|'.join(codes)}))"
    return "".join(one(ch) for ch in text)


# A query key is the token once percent-decoded (yarl decodes ``%74oken`` to ``token``, and so
# the daemon takes it, RFC 3986 2.3): every spelling of the key and of its ``=`` is matched.
_SECRETS = re.compile(rf"(?i)({_any_spelling('token')}(?:=|%(?:25)*3d)|bearer\s+|"
                      rf"authorization:\s*\S+\s+)[^&\s'\"\\]+")


def redact(text: str) -> str:
    """``text`` with every token value replaced: aiohttp quotes the raw request line and
    headers of a request it cannot parse, ``?token=`` (in any percent-encoded spelling of the
    key, ``?%74oken=``, ``?tok%65n=``, ``?token%3D``) and ``Authorization`` included."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}[redacted]", text)


class RepeatLimiter:
    """At most ``burst`` identical lines in each ``window_s``; the rest are counted, and the
    next line let through carries the count (``repeated``).

    Found under load: a daemon out of file descriptors logged asyncio's ``accept() out of
    system resource`` 27,252 times (9.4 MB in 20 s), which buried everything else. Identical
    means the same event and fields for our own events, the same logger and message template
    for a library's.
    """

    def __init__(self, burst: int = 5, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, list[float | int]] = {}  # key -> [window start, lines, dropped]
        self._pruned_at = clock()

    def allow(self, key: Hashable) -> tuple[bool, int]:
        """Whether to log this line, and how many like it were dropped before it."""
        now = self._clock()
        with self._lock:
            if now - self._pruned_at >= self.window_s:  # forget the windows that are over
                # (nothing of theirs was dropped): every line naming a swarm or a session is a
                # key of its own, and a daemon that runs for months logs millions of them
                self._pruned_at = now
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s
                              or (v[2] and now - v[0] < 10 * self.window_s)}
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                dropped = int(entry[2]) if entry is not None else 0
                self._seen[key] = [now, 1, 0]
                return True, dropped
            if entry[1] < self.burst:
                entry[1] += 1
                return True, 0
            entry[2] += 1
            return False, 0

    def __len__(self) -> int:
        """Keys remembered now (bounded by the distinct lines of the last few windows)."""
        return len(self._seen)

    def processor(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        key = tuple(sorted((k, repr(v)) for k, v in event.items() if k != "timestamp"))
        allowed, dropped = self.allow(key)
        if not allowed:
            raise structlog.DropEvent
        if dropped:
            event["repeated"] = dropped
        return event

    def filter(self, record: logging.LogRecord) -> bool:
        allowed, dropped = self.allow((record.name, record.levelno, str(record.msg)))
        if allowed and dropped:
            record.msg = f"{record.msg} [and {dropped} more like it]"
        return allowed
