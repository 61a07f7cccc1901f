"""espeak-ng behind the TextToSpeech protocol."""

from __future__ import annotations

import io
import wave

import pytest

from actors.speech.settings import SpeechSettings
from actors.speech.tts import EspeakTts, TextToSpeech

MAX_TEXT_CHARS = SpeechSettings().max_text_chars


@pytest.fixture(scope="module")
def espeak(speech_packages: None) -> EspeakTts:
    return EspeakTts()


def frames(wav: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(wav), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


def test_a_valid_wav_whose_length_grows_with_the_text(espeak: EspeakTts) -> None:
    assert isinstance(espeak, TextToSpeech)
    short = espeak.synthesize("list agents")
    long = espeak.synthesize("list agents, then start a swarm and show the swarm status to everyone")
    for speech in (short, long):
        channels, width, rate, n = frames(speech.wav)
        assert (channels, width, rate) == (1, 2, speech.sample_rate) and n > 0
        assert speech.provider == "espeak-ng" and speech.fallback_reason is None
    assert frames(long.wav)[3] > 2 * frames(short.wav)[3]


def test_speed_maps_to_words_per_minute(espeak: EspeakTts) -> None:
    assert espeak.words_per_minute(None) == 175 and espeak.words_per_minute(2.0) == 350
    assert espeak.words_per_minute(0.25) == EspeakTts.MIN_WPM and espeak.words_per_minute(4.0) == EspeakTts.MAX_WPM
    text = "the quick brown fox jumps over the lazy dog"
    assert frames(espeak.synthesize(text, speed=2.0).wav)[3] < 0.7 * frames(espeak.synthesize(text).wav)[3]
    with pytest.raises(ValueError, match="speed"):
        espeak.synthesize(text, speed=10)


def test_voice_is_passed_and_checked(espeak: EspeakTts) -> None:
    british = espeak.synthesize("hello there", voice="en-gb").wav
    assert frames(british)[3] > 0
    assert espeak.synthesize("hello there", voice="en-gb").wav == british  # deterministic...
    assert espeak.synthesize("hello there", voice="en-us").wav != british  # ...so the voice told
    for bad in ("--help", "a b", "x;rm -rf /", ""):
        with pytest.raises(ValueError):
            espeak.synthesize("hello", voice=bad) if bad else EspeakTts(voice=bad)


def test_text_that_looks_like_options_is_spoken_not_obeyed(espeak: EspeakTts) -> None:
    assert frames(espeak.synthesize("--version -w /tmp/x").wav)[3] > 0


def test_empty_and_oversized_text_are_rejected(espeak: EspeakTts) -> None:
    for empty in ("", "   \n"):
        with pytest.raises(ValueError, match="empty"):
            espeak.synthesize(empty)
    with pytest.raises(ValueError, match="limit"):
        espeak.synthesize("a" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ValueError, match="lone surrogate"):
        espeak.synthesize("hello \ud800")
    assert espeak.synthesize("ok " * (MAX_TEXT_CHARS // 3)).wav
