"""Text to speech: one protocol, two engines, both returning a complete 16-bit PCM WAV.

- :class:`EspeakTts`: offline, the default: Debian's ``espeak-ng`` run with an argv (never a
  shell), the text on stdin so that nothing in it can be read as an option.
- :class:`HttpTts`: a Kokoro/OpenAI-compatible ``/v1/audio/speech`` server.

``speed`` is a multiplier of the normal rate (1.0), as in the OpenAI API, for both engines.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from actors.processes import CommandTimeout, run_command
from actors.speech import audio
from actors.speech.errors import AudioError, ProviderError, SpeechError
from actors.speech.http_client import join_url, post_json
from actors.speech.settings import SpeechSettings

__all__ = [
    "EspeakTts",
    "HttpTts",
    "Speech",
    "TextToSpeech",
    "check_speed",
    "check_text",
    "check_voice",
]


# the defaults of an engine made by hand (tests, benches) are the settings' own
_DEFAULTS = SpeechSettings()
MIN_SPEED, MAX_SPEED = 0.25, 4.0
_VOICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-/]{0,63}$")


@dataclass(frozen=True, slots=True)
class Speech:
    """A complete WAV file; ``fallback_reason`` is set when the offline engine stood in."""

    wav: bytes
    sample_rate: int
    provider: str
    fallback_reason: str | None = None


@runtime_checkable
class TextToSpeech(Protocol):
    name: str

    def synthesize(self, text: str, voice: str | None = None, speed: float | None = None) -> Speech: ...


def check_text(text: str, max_chars: int = _DEFAULTS.max_text_chars) -> str:
    """The text stripped, or ``ValueError`` when it is empty or longer than ``max_chars``
    (a bound on the CPU and memory one request can take)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ValueError("text to speak is empty")
    if len(stripped) > max_chars:
        raise ValueError(f"text to speak has {len(stripped)} characters; the limit is {max_chars}")
    try:
        stripped.encode("utf-8")  # what the engines are given
    except UnicodeEncodeError:
        raise ValueError("text to speak must be valid Unicode (it has a lone surrogate)") from None
    return stripped


def check_speed(speed: float | None) -> float:
    if speed is None:
        return 1.0
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be a number within [{MIN_SPEED}, {MAX_SPEED}], got {speed!r}")
    return float(speed)


def check_voice(voice: str) -> str:
    """Voice names are short identifiers; anything else is refused before reaching an engine."""
    if not isinstance(voice, str) or not _VOICE.match(voice):
        shown = repr(voice)
        raise ValueError(f"invalid voice name {shown[:40]}{'...' if len(shown) > 40 else ''}")
    return voice


def _normalised(provider: str, wav: bytes) -> tuple[bytes, int]:
    """Re-frame an engine's WAV as mono 16-bit PCM with a correct header."""
    try:
        decoded = audio.decode_wav(wav)
    except AudioError as exc:
        raise ProviderError(provider, f"did not return a 16-bit PCM WAV: {exc}", transient=False) from exc
    if not decoded.pcm16:
        raise ProviderError(provider, "returned no audio", transient=False)
    if not audio.MIN_RATE <= decoded.sample_rate <= audio.MAX_RATE:
        raise ProviderError(provider, f"returned audio at {decoded.sample_rate} Hz", transient=False)
    return audio.encode_wav(decoded.pcm16, decoded.sample_rate), decoded.sample_rate


class EspeakTts:
    """``espeak-ng -v VOICE -s WPM -w FILE --stdin``.

    The default voice is ``en-us``: the offline recogniser's model is US English, and with
    espeak's default British voice it heard "analyst" as "architect".
    """

    name = "espeak-ng"
    BASE_WPM = 175  # espeak-ng's own default rate: speed 1.0
    MIN_WPM, MAX_WPM = 80, 450

    def __init__(self, voice: str = "en-us", binary: str = "espeak-ng", timeout_s: float = 20.0,
                 max_chars: int = _DEFAULTS.max_text_chars) -> None:
        path = shutil.which(binary)
        if path is None:
            raise SpeechError(f"{binary} is not installed: run scripts/install-speech.sh "
                              "(apt-get install espeak-ng)")
        self.binary = path
        self.voice = check_voice(voice)
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    def words_per_minute(self, speed: float | None) -> int:
        return round(min(self.MAX_WPM, max(self.MIN_WPM, self.BASE_WPM * check_speed(speed))))

    def synthesize(self, text: str, voice: str | None = None, speed: float | None = None) -> Speech:
        text = check_text(text, self.max_chars)
        chosen = check_voice(voice) if voice else self.voice
        wpm = self.words_per_minute(speed)
        # -w FILE rather than --stdout: espeak-ng streams to stdout with a placeholder length
        # in the WAV header, which readers handle inconsistently.
        with tempfile.TemporaryDirectory(prefix="hive-tts-") as tmp:
            out = os.path.join(tmp, "speech.wav")
            argv = [self.binary, "-v", chosen, "-s", str(wpm), "-w", out, "--stdin"]
            try:  # in a process group of its own, killed as a whole on timeout
                done = run_command(argv, cwd=None, env=os.environ, timeout=self.timeout_s,
                                   stdin=text.encode("utf-8"))
            except CommandTimeout as exc:
                raise ProviderError(self.name, f"took longer than {self.timeout_s:g} s", transient=True) from exc
            except OSError as exc:
                raise ProviderError(self.name, f"cannot run {self.binary}: {exc}", transient=False) from exc
            if done.code != 0 or not os.path.exists(out):
                detail = done.stderr.strip()[:300]
                raise ProviderError(self.name, f"exit {done.code}: {detail or 'no output'}", transient=False)
            with open(out, "rb") as f:
                raw = f.read()
        wav, rate = _normalised(self.name, raw)
        return Speech(wav, rate, self.name)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "voice": self.voice}


class HttpTts:
    """``POST {base_url}/v1/audio/speech`` (Kokoro-FastAPI, OpenAI) asking for a WAV.

    One attempt per call: retries, the breaker and the fallback live in ``resilient.py``.
    """

    name = "tts-http"

    def __init__(self, base_url: str, model: str = "kokoro", voice: str = "af_heart",
                 api_key: str | None = None, timeout_s: float = _DEFAULTS.http_timeout_s,
                 max_chars: int = _DEFAULTS.max_text_chars) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"tts_url must be an http(s) URL, got {base_url!r}")
        self.url = join_url(base_url, "/v1/audio/speech")
        self.model = model
        self.voice = check_voice(voice)
        self.api_key = api_key or None
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    def synthesize(self, text: str, voice: str | None = None, speed: float | None = None) -> Speech:
        payload = {
            "model": self.model,
            "input": check_text(text, self.max_chars),
            "voice": check_voice(voice) if voice else self.voice,
            "speed": check_speed(speed),
            "response_format": "wav",
        }
        data, _ = post_json(self.name, self.url, payload, api_key=self.api_key, timeout_s=self.timeout_s)
        wav, rate = _normalised(self.name, data)
        return Speech(wav, rate, self.name)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "url": self.url, "model": self.model, "voice": self.voice}
