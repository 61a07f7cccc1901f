"""espeak-ng says each command; pocketsphinx hears it, whole and streamed, at several rates."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from actors.speech.audio import resample
from actors.speech.commands import PHRASES, all_utterances, parse_command
from actors.speech.errors import AudioError, SpeechError
from actors.speech.stt import PocketSphinxStt, SpeechToText, Transcript
from tests.actors.speech.conftest import Speak

COMMANDS = all_utterances()
PLAIN_COMMANDS = tuple(p for p in PHRASES.values() if "{" not in p)


def stream(stt: PocketSphinxStt, pcm: bytes, rate: int, chunk_s: float = 0.1) -> tuple[list[Transcript], Transcript]:
    step = 2 * int(rate * chunk_s)
    s = stt.open_stream(rate)
    partials = [t for i in range(0, len(pcm), step) if (t := s.feed(pcm[i:i + step])) is not None]
    return partials, s.finish()


@pytest.mark.parametrize("rate", [None, 44_100, 11_025])  # None: espeak-ng's own 22,050 Hz
def test_every_command_is_transcribed_exactly(sphinx: PocketSphinxStt, speak: Speak, rate: int | None) -> None:
    assert isinstance(sphinx, SpeechToText)
    for command in COMMANDS:
        clip = speak(command, rate)
        heard = sphinx.transcribe(clip.pcm16, clip.sample_rate)
        assert heard == Transcript(command, True, "pocketsphinx"), f"{rate} Hz"
        assert parse_command(heard.text) is not None


def test_our_resampler_feeds_the_engine_as_well_as_sox(sphinx: PocketSphinxStt, speak: Speak) -> None:
    for command in COMMANDS:
        clip = speak(command, None)
        ours = resample(clip.pcm16, clip.sample_rate, 16_000)
        assert sphinx.transcribe(ours, 16_000).text == command


def test_telephone_band_8k(sphinx: PocketSphinxStt, speak: Speak) -> None:
    """At 8 kHz nothing above 4 kHz survives, so /t/ and /s/ bursts are gone: measured, the
    engine confuses "tester" with "coder" there. Every non-agent command must be exact, and
    all but at most two of the fourteen."""
    exact = 0
    for command in COMMANDS:
        clip = speak(command, 8_000)
        text = sphinx.transcribe(clip.pcm16, 8_000).text
        exact += text == command
        if command in PLAIN_COMMANDS:
            assert text == command
    assert exact >= len(COMMANDS) - 2


@pytest.mark.parametrize("rate", [None, 44_100, 8_000])
def test_streaming_100ms_chunks_gives_partials_then_the_final(sphinx: PocketSphinxStt, speak: Speak,
                                                              rate: int | None) -> None:
    for command in ("spawn an optimizer agent", "show swarm status", "stop all swarms"):
        clip = speak(command, rate)
        partials, final = stream(sphinx, clip.pcm16, clip.sample_rate)
        assert partials and all(not p.is_final and p.provider == "pocketsphinx" for p in partials)
        assert all(a.text != b.text for a, b in itertools.pairwise(partials))  # only changes
        assert final == Transcript(command, True, "pocketsphinx")


def test_concurrent_streams_from_threads(sphinx: PocketSphinxStt, speak: Speak) -> None:
    results: dict[str, str] = {}
    errors: list[Exception] = []

    def run(command: str) -> None:
        try:
            clip = speak(command, None)
            results[command] = stream(sphinx, clip.pcm16, clip.sample_rate)[1].text
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    chosen = COMMANDS[:6]
    for command in chosen:  # synthesise first: the fixture's cache is not meant for threads
        speak(command, None)
    threads = [threading.Thread(target=run, args=(c,)) for c in chosen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == {c: c for c in chosen}
    decoders = sphinx.describe()["decoders"]["wide"]
    assert decoders["in_use"] == 0 and decoders["idle"] <= sphinx.settings.pool_size


def test_stream_misuse_and_bad_audio(sphinx: PocketSphinxStt, speak: Speak) -> None:
    clip = speak("list agents", None)
    s = sphinx.open_stream(clip.sample_rate)
    with pytest.raises(AudioError, match="even number"):
        s.feed(b"\x00\x01\x02")
    s.feed(clip.pcm16)
    assert s.finish().text == "list agents"
    with pytest.raises(SpeechError):
        s.feed(clip.pcm16)
    s.close()  # harmless after finish
    abandoned = sphinx.open_stream(16_000)
    abandoned.feed(b"\x00\x00" * 1600)
    abandoned.close()
    abandoned.close()
    with pytest.raises(AudioError, match="outside"):
        sphinx.open_stream(96_000)
    # silence and a quiet room are no command (the grammar would otherwise force one on them)
    assert sphinx.transcribe(b"\x00\x00" * 8000, 16_000).text == ""
    hiss = np.random.default_rng(0).normal(0, 30, 16_000).astype("<i2").tobytes()
    assert sphinx.transcribe(hiss, 16_000).text == ""


def test_a_stream_never_waits_for_a_decoder() -> None:
    """Streams are opened on the speech actor's thread: with every decoder taken, the next open
    fails at once (a wait of an hour would show as the TimeoutError of the future)."""
    from concurrent.futures import ThreadPoolExecutor

    from actors.speech.errors import ProviderError
    from actors.speech.stt import PocketSphinxSettings

    engine = PocketSphinxStt(PocketSphinxSettings(max_decoders=1, acquire_timeout_s=3600))
    try:
        first = engine.open_stream(16_000)
        with ThreadPoolExecutor(1) as pool, pytest.raises(ProviderError, match="all 1 decoders busy"):
            pool.submit(engine.open_stream, 16_000).result(timeout=60)
        first.close()
        engine.open_stream(16_000).close()  # the decoder came back
    finally:
        engine.close()
