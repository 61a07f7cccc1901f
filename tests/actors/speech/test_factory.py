"""Engines from the ``[actors.speech]`` keys."""

from __future__ import annotations

import pytest

from actors.schema import SettingError
from actors.speech.errors import SpeechError
from actors.speech.factory import build_stt, build_tts
from actors.speech.resilient import FallbackStt, FallbackTts
from actors.speech.settings import SpeechSettings
from actors.speech.stt import HttpWhisperStt, PocketSphinxStt
from actors.speech.tts import EspeakTts, HttpTts


def test_defaults_are_offline() -> None:
    settings = SpeechSettings(stt="pocketsphinx")
    assert isinstance(build_stt(settings), PocketSphinxStt) and isinstance(build_tts(settings), EspeakTts)


def test_http_engines_come_with_their_fallbacks() -> None:
    settings = SpeechSettings(stt="http", tts="http", stt_url="http://127.0.0.1:9/v1", tts_url="http://127.0.0.1:9",
                              api_key="k")
    stt, tts = build_stt(settings), build_tts(settings)
    assert isinstance(stt, FallbackStt) and isinstance(stt.primary, HttpWhisperStt)
    assert stt.primary.url == "http://127.0.0.1:9/v1/audio/transcriptions"
    assert isinstance(tts, FallbackTts) and isinstance(tts.primary, HttpTts) and isinstance(tts.fallback, EspeakTts)
    assert stt.describe()["breaker"]["state"] == "closed"


@pytest.mark.parametrize(("settings", "message"), [
    (SpeechSettings(stt="http"), "stt_url"),
    (SpeechSettings(stt="faster-whisper"), "faster-whisper"),
])
def test_missing_configuration_says_what_to_do(settings: SpeechSettings, message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        build_stt(settings)
    with pytest.raises(SpeechError, match="tts_url"):
        build_tts(SpeechSettings(tts="http"))


def test_an_unknown_provider_is_refused_by_the_settings_themselves() -> None:
    """The one schema: an unknown engine never reaches the factory."""
    with pytest.raises(SettingError, match=r"stt: expected one of pocketsphinx, http, faster-whisper"):
        SpeechSettings(stt="nope")  # type: ignore[arg-type]
