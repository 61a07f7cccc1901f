"""Build the configured engines from the ``[actors.speech]`` keys.

The offline engines are always built (they are the fallbacks); an HTTP engine is wrapped in
its fallback; ``faster-whisper`` is local, so it stands alone and a missing package or model
folder fails start-up with a message saying what to install or configure.
"""

from __future__ import annotations

from actors.speech.errors import SpeechError
from actors.speech.resilient import FallbackStt, FallbackTts, RetryPolicy
from actors.speech.settings import SpeechSettings
from actors.speech.stt import (
    FasterWhisperStt,
    HttpWhisperStt,
    PocketSphinxSettings,
    PocketSphinxStt,
    SpeechToText,
)
from actors.speech.tts import EspeakTts, HttpTts, TextToSpeech

__all__ = ["build_stt", "build_tts"]


def build_stt(settings: SpeechSettings, retry: RetryPolicy | None = None) -> SpeechToText:
    offline = PocketSphinxStt(PocketSphinxSettings(max_utterance_s=settings.max_utterance_s))
    if settings.stt == "pocketsphinx":
        return offline
    if settings.stt == "http":
        if not settings.stt_url:
            raise SpeechError('stt = "http" needs stt_url (an OpenAI-compatible transcription server)')
        primary = HttpWhisperStt(settings.stt_url, settings.stt_model, settings.api_key or None,
                                 settings.http_timeout_s, max_utterance_s=settings.max_utterance_s)
        return FallbackStt(primary, offline, retry=retry)
    if settings.stt == "faster-whisper":
        return FasterWhisperStt(settings.faster_whisper_model_dir,
                                max_utterance_s=settings.max_utterance_s)
    raise SpeechError(f"unknown stt provider {settings.stt!r}: pocketsphinx, http or faster-whisper")


def build_tts(settings: SpeechSettings, retry: RetryPolicy | None = None) -> TextToSpeech:
    offline = EspeakTts(settings.espeak_voice, max_chars=settings.max_text_chars)
    if settings.tts == "espeak-ng":
        return offline
    if settings.tts == "http":
        if not settings.tts_url:
            raise SpeechError('tts = "http" needs tts_url (a Kokoro/OpenAI-compatible speech server)')
        primary = HttpTts(settings.tts_url, settings.tts_model, settings.tts_voice, settings.api_key or None,
                          settings.http_timeout_s, max_chars=settings.max_text_chars)
        return FallbackTts(primary, offline, retry=retry)
    raise SpeechError(f"unknown tts provider {settings.tts!r}: espeak-ng or http")
