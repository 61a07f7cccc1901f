"""``[actors.speech]``: the speech actor's settings and its engines', the one schema of its
keys (docs/speech.md, docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.schema import Settings, internal, seconds, setting

__all__ = ["SpeechSettings"]


@dataclass(frozen=True)
class SpeechSettings(Settings):
    stt: Literal["pocketsphinx", "http", "faster-whisper"] = "pocketsphinx"
    tts: Literal["espeak-ng", "http"] = "espeak-ng"
    stt_url: str = ""  # an OpenAI-compatible transcription server (stt = "http")
    tts_url: str = ""  # a Kokoro/OpenAI-compatible speech server (tts = "http")
    stt_model: str = "whisper-1"
    tts_model: str = "kokoro"
    tts_voice: str = "af_heart"
    espeak_voice: str = "en-us"
    http_timeout_s: float = seconds(30.0, lo=0.1)
    api_key: str = setting("", secret=True)
    faster_whisper_model_dir: str = ""
    workers: int = setting(2, lo=1, hi=16)  # threads that decode and synthesize
    max_chunk_bytes: int = setting(256 * 1024, lo=1024)  # one binary audio message
    max_utterance_s: float = seconds(30.0, lo=1.0)
    max_text_chars: int = setting(2_000, lo=10)  # TTS text and typed voice commands
    hive_mind: str = internal("hive_mind")  # siblings that carry out voice commands
    mcp: str = internal("mcp")
