"""Retries, the breaker and the offline fallback in front of the HTTP speech engines.

A call to the primary (a Whisper or Kokoro server) goes through the project's one
:class:`CircuitBreaker` with up to ``attempts`` tries spaced by the project's one
:class:`Backoff` (with jitter, so clients retry out of step). When the breaker is open or the
tries are spent, the offline engine answers instead and the result says why in
``fallback_reason``: a voice command still works when the GPU box running Whisper is down.

Bad input (``ValueError``, which includes ``AudioError``) is the caller's fault: it is raised
at once, neither retried, nor counted against the peer, nor sent to the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from actors.circuit_breaker import BreakerOpen, BreakerSettings, CircuitBreaker
from actors.speech.errors import ProviderError, SpeechError
from actors.speech.stt import BufferedStream, SpeechToText, SttStream, Transcript
from actors.speech.tts import Speech, TextToSpeech
from supervisor import Backoff

__all__ = ["SPEECH_BREAKER", "FallbackStt", "FallbackTts", "RetryPolicy", "call_with_retries"]


log = structlog.get_logger("actors.speech.resilient")

T = TypeVar("T")

# A speech request is interactive: give up on a dead peer after three failures and look again
# 30 s later; one good answer closes the breaker (the fallback is serving meanwhile).
SPEECH_BREAKER = BreakerSettings(failure_threshold=3, recovery_timeout_s=30.0, success_threshold=1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; before try ``n+1`` wait ``backoff.delay(n)``."""

    attempts: int = 3
    backoff: Backoff = field(default_factory=lambda: Backoff(min_s=0.2, max_s=2.0, multiplier=2.0, jitter=0.2))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.transient


def _counts_against_peer(exc: BaseException) -> bool:
    """Everything but bad input: a peer that answers 401 or garbage is as useless as a dead one."""
    return not isinstance(exc, ValueError)


def call_with_retries(breaker: CircuitBreaker, policy: RetryPolicy, fn: Callable[[], T],
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``fn`` through ``breaker``, retrying transient failures with ``policy``'s backoff.

    Raises :class:`BreakerOpen` as soon as the breaker refuses (before or between tries), or the
    last error once the tries are spent or the error is not transient.
    """
    attempt = 0
    while True:
        try:
            return breaker.call(fn, is_failure=_counts_against_peer)
        except BreakerOpen:
            raise
        except Exception as exc:
            if isinstance(exc, ValueError) or not _is_transient(exc) or attempt + 1 >= policy.attempts:
                raise
            delay = policy.backoff.delay(attempt)
            log.info("speech.retry", peer=breaker.name, attempt=attempt + 1, delay_s=round(delay, 3), error=str(exc))
            attempt += 1
            sleep(delay)


def _reason(name: str, exc: BaseException, attempts: int) -> str:
    if isinstance(exc, BreakerOpen):
        return f"{name} breaker open: {exc}"
    if isinstance(exc, ProviderError) and exc.transient:
        return f"{name} failed after {attempts} attempts: {exc}"
    return f"{name} failed: {exc}"


class _Guarded:
    """What both fallbacks share: a breaker, a retry policy, and the fallback decision."""

    def __init__(self, primary_name: str, breaker: CircuitBreaker | None, retry: RetryPolicy | None,
                 sleep: Callable[[float], None]) -> None:
        self.breaker = breaker or CircuitBreaker(primary_name, SPEECH_BREAKER)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.fallbacks = 0

    def attempt(self, fn: Callable[[], T], primary_name: str) -> tuple[T | None, str | None]:
        """``(result, None)`` from the primary, or ``(None, reason)`` when it must be replaced."""
        try:
            return call_with_retries(self.breaker, self.retry, fn, self._sleep), None
        except ValueError:
            raise
        except (BreakerOpen, SpeechError) as exc:
            reason = _reason(primary_name, exc, self.retry.attempts)
        except Exception as exc:  # noqa: BLE001 - an engine's unexpected error must not cost the answer
            reason = _reason(primary_name, exc, self.retry.attempts)
        self.fallbacks += 1
        log.warning("speech.fallback", peer=primary_name, reason=reason)
        return None, reason

    def describe(self) -> dict[str, Any]:
        return {"breaker": self.breaker.describe(), "attempts": self.retry.attempts, "fallbacks": self.fallbacks}


class FallbackStt:
    """``primary`` (usually :class:`HttpWhisperStt`) guarded, ``fallback`` (pocketsphinx) behind it."""

    def __init__(self, primary: SpeechToText, fallback: SpeechToText, breaker: CircuitBreaker | None = None,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.sample_rate = primary.sample_rate
        self._guard = _Guarded(primary.name, breaker, retry, sleep)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        result, reason = self._guard.attempt(lambda: self.primary.transcribe(pcm16, sample_rate), self.primary.name)
        if result is not None:
            return result
        heard = self.fallback.transcribe(pcm16, sample_rate)
        return Transcript(heard.text, heard.is_final, heard.provider, reason)

    def open_stream(self, sample_rate: int) -> SttStream:
        """While the breaker is open, stream straight through the fallback (with its partials);
        otherwise collect the utterance and try the primary on :meth:`SttStream.finish`."""
        try:
            self.breaker.check()
        except BreakerOpen as exc:
            return _ReasonedStream(self.fallback.open_stream(sample_rate),
                                   _reason(self.primary.name, exc, self._guard.retry.attempts))
        return BufferedStream(self.transcribe, sample_rate)

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    def describe(self) -> dict[str, Any]:
        return {"provider": self.primary.name, "fallback": self.fallback.name, **self._guard.describe()}


class _ReasonedStream:
    """A fallback stream whose transcripts carry why the primary was skipped."""

    def __init__(self, inner: SttStream, reason: str) -> None:
        self._inner = inner
        self._reason = reason

    def feed(self, pcm16: bytes) -> Transcript | None:
        heard = self._inner.feed(pcm16)
        return None if heard is None else Transcript(heard.text, heard.is_final, heard.provider, self._reason)

    def finish(self) -> Transcript:
        heard = self._inner.finish()
        return Transcript(heard.text, heard.is_final, heard.provider, self._reason)

    def close(self) -> None:
        self._inner.close()


class FallbackTts:
    """``primary`` (usually :class:`HttpTts`) guarded, ``fallback`` (espeak-ng) behind it."""

    def __init__(self, primary: TextToSpeech, fallback: TextToSpeech, breaker: CircuitBreaker | None = None,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self._guard = _Guarded(primary.name, breaker, retry, sleep)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    def synthesize(self, text: str, voice: str | None = None, speed: float | None = None) -> Speech:
        result, reason = self._guard.attempt(lambda: self.primary.synthesize(text, voice, speed), self.primary.name)
        if result is not None:
            return result
        # The primary's voice names (Kokoro's "af_heart") mean nothing to espeak-ng: its default.
        spoken = self.fallback.synthesize(text, None, speed)
        return Speech(spoken.wav, spoken.sample_rate, spoken.provider, reason)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.primary.name, "fallback": self.fallback.name, **self._guard.describe()}
