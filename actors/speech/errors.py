"""The speech engines' errors, so callers can tell bad input from a failing engine.

``AudioError`` is also a ``ValueError``: a client sent audio we cannot use, which is the
client's fault and must not count against any engine (no retry, no breaker failure).
``ProviderError`` is an engine that failed; ``transient`` says whether trying again may help
(a refused connection, a timeout, a 5xx) or not (a 401, an answer that is not audio).
"""

from __future__ import annotations

__all__ = ["AudioError", "ProviderError", "SpeechError", "UnknownStream"]


class SpeechError(Exception):
    """Base of every error raised by ``actors.speech``."""


class AudioError(SpeechError, ValueError):
    """Audio that cannot be used: odd byte count, unsupported rate, not 16-bit PCM WAV."""


class ProviderError(SpeechError):
    """A speech engine (local binary or HTTP peer) failed to produce a result."""

    def __init__(self, provider: str, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.transient = transient
        self.status = status


class UnknownStream(SpeechError):
    pass
