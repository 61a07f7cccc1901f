"""What the speech actor understands and answers (import these, not the actor module)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "RunVoiceCommand",
    "SttCancel",
    "SttFeed",
    "SttFinish",
    "SttOpen",
    "Synthesize",
    "VoiceReply",
]


@dataclass(frozen=True, slots=True)
class SttOpen:
    stream: str
    sample_rate: int = 16_000
    language: str | None = None


@dataclass(frozen=True, slots=True)
class SttFeed:
    stream: str
    pcm16: bytes


@dataclass(frozen=True, slots=True)
class SttFinish:
    stream: str


@dataclass(frozen=True, slots=True)
class SttCancel:
    stream: str


@dataclass(frozen=True, slots=True)
class Synthesize:
    text: str
    voice: str | None = None
    speed: float | None = None


@dataclass(frozen=True, slots=True)
class RunVoiceCommand:
    text: str


@dataclass(frozen=True, slots=True)
class VoiceReply:
    command: str | None  # the recognised command's kind, None when nothing matched
    text: str  # what to say back
    ok: bool
