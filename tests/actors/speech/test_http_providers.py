"""The HTTP engines against a real aiohttp server on 127.0.0.1: retries with backoff on 503s,
and a server that accepts and never answers (breaker opens, the offline engine answers)."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from actors.circuit_breaker import BreakerSettings, BreakerState, CircuitBreaker
from actors.speech.audio import encode_wav
from actors.speech.resilient import FallbackStt, FallbackTts, RetryPolicy
from actors.speech.stt import HttpWhisperStt, PocketSphinxStt, Transcript
from actors.speech.tts import EspeakTts, HttpTts
from supervisor import Backoff
from tests.actors.speech.conftest import Speak

NO_JITTER = RetryPolicy(attempts=4, backoff=Backoff(min_s=0.1, max_s=1.0, multiplier=2.0, jitter=0.0))


@dataclass
class Peer:
    """What the fake-free peer saw: request times, forms and JSON bodies."""

    url: str = ""
    failures_left: int = 2
    times: list[float] = field(default_factory=list)
    forms: list[dict[str, object]] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)


def _wav_tone() -> bytes:
    return encode_wav(b"\x10\x00\xf0\xff" * 12_000, 24_000)  # 1 s at 24 kHz, Kokoro's rate


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    state = Peer()

    async def transcriptions(request: web.Request) -> web.Response:
        state.times.append(time.monotonic())
        state.auth.append(request.headers.get("Authorization"))
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read()), "rb") as w:
            state.forms.append({"model": form["model"], "rate": w.getframerate(), "frames": w.getnframes()})
        if state.failures_left > 0:
            state.failures_left -= 1
            return web.Response(status=503, text="warming up")
        return web.json_response({"text": " list agents "})

    async def speech(request: web.Request) -> web.Response:
        state.times.append(time.monotonic())
        state.bodies.append(await request.json())
        if state.failures_left > 0:
            state.failures_left -= 1
            return web.Response(status=503, text="busy")
        return web.Response(body=_wav_tone(), content_type="audio/wav")

    async def hang(request: web.Request) -> web.Response:
        state.times.append(time.monotonic())
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def unauthorised(request: web.Request) -> web.Response:
        state.times.append(time.monotonic())
        return web.Response(status=401, text="bad key")

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/hang/v1/audio/transcriptions", hang)
    app.router.add_post("/hang/v1/audio/speech", hang)
    app.router.add_post("/denied/v1/audio/transcriptions", unauthorised)
    runner = web.AppRunner(app, shutdown_timeout=0.2)  # the hanging handlers are cancelled fast
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_whisper_retries_503_with_backoff_then_answers(peer: Peer, speak: Speak, sphinx: PocketSphinxStt) -> None:
    clip = speak("list agents", None)
    stt = FallbackStt(HttpWhisperStt(peer.url, model="whisper-large", api_key="k3y", timeout_s=5), sphinx,
                      retry=NO_JITTER)
    heard = await asyncio.to_thread(stt.transcribe, clip.pcm16, clip.sample_rate)
    assert (heard.text, heard.provider, heard.fallback_reason, heard.is_final) == \
        ("list agents", "whisper-http", None, True)
    assert len(peer.times) == 3  # two 503s, then the answer
    first, second = _gaps(peer.times)
    assert first >= 0.1 and second >= 0.2  # Backoff(0.1, x2), no jitter: the pauses were kept
    assert peer.forms[0] == {"model": "whisper-large", "rate": clip.sample_rate,
                             "frames": len(clip.pcm16) // 2}
    assert peer.auth == ["Bearer k3y"] * 3
    assert stt.describe()["breaker"]["state"] == "closed"


async def test_whisper_stream_collects_and_sends_on_finish(peer: Peer, speak: Speak, sphinx: PocketSphinxStt) -> None:
    peer.failures_left = 0
    clip = speak("list agents", 44_100)
    stt = FallbackStt(HttpWhisperStt(peer.url + "/v1/", timeout_s=5), sphinx, retry=NO_JITTER)

    def run() -> tuple[list[Transcript | None], Transcript]:
        s = stt.open_stream(44_100)
        partials = [s.feed(clip.pcm16[i:i + 8_820]) for i in range(0, len(clip.pcm16), 8_820)]
        return partials, s.finish()

    partials, final = await asyncio.to_thread(run)
    assert set(partials) == {None} and final.text == "list agents" and final.provider == "whisper-http"
    assert peer.forms[0]["frames"] == len(clip.pcm16) // 2


async def test_tts_retries_503_with_backoff_then_answers(peer: Peer) -> None:
    tts = FallbackTts(HttpTts(peer.url, model="kokoro", voice="af_bella", timeout_s=5), EspeakTts(), retry=NO_JITTER)
    speech = await asyncio.to_thread(tts.synthesize, "show swarm status", None, 1.25)
    assert (speech.provider, speech.sample_rate, speech.fallback_reason) == ("tts-http", 24_000, None)
    with wave.open(io.BytesIO(speech.wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getnframes()) == (1, 2, 24_000)
    assert len(peer.times) == 3 and _gaps(peer.times)[0] >= 0.1 and _gaps(peer.times)[1] >= 0.2
    assert peer.bodies[-1] == {"model": "kokoro", "input": "show swarm status", "voice": "af_bella",
                               "speed": 1.25, "response_format": "wav"}


async def test_hanging_whisper_opens_the_breaker_and_pocketsphinx_answers(
        peer: Peer, speak: Speak, sphinx: PocketSphinxStt) -> None:
    clip = speak("stop all swarms", None)
    breaker = CircuitBreaker("whisper-http", BreakerSettings(failure_threshold=2, recovery_timeout_s=60))
    stt = FallbackStt(HttpWhisperStt(peer.url + "/hang", timeout_s=0.3), sphinx, breaker=breaker, retry=NO_JITTER)

    heard = await asyncio.to_thread(stt.transcribe, clip.pcm16, clip.sample_rate)
    assert (heard.text, heard.provider) == ("stop all swarms", "pocketsphinx")
    assert heard.fallback_reason is not None and heard.fallback_reason.startswith("whisper-http breaker open")
    assert len(peer.times) == 2  # two time-outs trip the breaker; the third try is refused by it
    assert breaker.state is BreakerState.OPEN

    again = await asyncio.to_thread(stt.transcribe, clip.pcm16, clip.sample_rate)
    assert again.text == "stop all swarms" and "breaker open" in (again.fallback_reason or "")
    assert len(peer.times) == 2  # the dead peer is not asked

    def stream() -> tuple[list[Transcript], Transcript]:
        s = stt.open_stream(clip.sample_rate)
        step = 2 * clip.sample_rate // 10
        partials = [t for i in range(0, len(clip.pcm16), step) if (t := s.feed(clip.pcm16[i:i + step]))]
        return partials, s.finish()

    partials, final = await asyncio.to_thread(stream)  # open breaker: live partials from pocketsphinx
    assert partials and all(p.fallback_reason and p.provider == "pocketsphinx" for p in partials)
    assert final.text == "stop all swarms" and final.fallback_reason
    described = stt.describe()
    assert described["provider"] == "whisper-http" and described["fallback"] == "pocketsphinx"
    assert described["breaker"]["state"] == "open" and described["fallbacks"] == 2


async def test_hanging_tts_falls_back_to_espeak(peer: Peer) -> None:
    breaker = CircuitBreaker("tts-http", BreakerSettings(failure_threshold=1, recovery_timeout_s=60))
    tts = FallbackTts(HttpTts(peer.url + "/hang", timeout_s=0.3), EspeakTts(), breaker=breaker, retry=NO_JITTER)
    speech = await asyncio.to_thread(tts.synthesize, "list agents", "af_heart", None)
    assert speech.provider == "espeak-ng" and speech.fallback_reason
    assert speech.fallback_reason.startswith("tts-http breaker open") and len(peer.times) == 1
    with wave.open(io.BytesIO(speech.wav), "rb") as w:
        assert w.getnframes() > 0
    assert tts.describe()["breaker"]["state"] == "open"


async def test_refusal_is_not_retried_but_falls_back(peer: Peer, speak: Speak, sphinx: PocketSphinxStt) -> None:
    clip = speak("list agents", None)
    stt = FallbackStt(HttpWhisperStt(peer.url + "/denied", timeout_s=5), sphinx, retry=NO_JITTER)
    heard = await asyncio.to_thread(stt.transcribe, clip.pcm16, clip.sample_rate)
    assert len(peer.times) == 1 and heard.provider == "pocketsphinx"
    assert heard.fallback_reason is not None and "HTTP 401" in heard.fallback_reason


async def test_nobody_listening_is_retried_then_falls_back(sphinx: PocketSphinxStt, speak: Speak) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = speak("list agents", None)
    fast = RetryPolicy(attempts=2, backoff=Backoff(min_s=0.01, max_s=0.01))
    stt = FallbackStt(HttpWhisperStt(f"http://127.0.0.1:{port}", timeout_s=1), sphinx, retry=fast)
    heard = await asyncio.to_thread(stt.transcribe, clip.pcm16, clip.sample_rate)
    assert heard.provider == "pocketsphinx" and "after 2 attempts" in (heard.fallback_reason or "")


async def test_bad_input_is_the_callers_fault(peer: Peer) -> None:
    tts = FallbackTts(HttpTts(peer.url, timeout_s=5), EspeakTts(), retry=NO_JITTER)
    with pytest.raises(ValueError, match="empty"):
        await asyncio.to_thread(tts.synthesize, "  ")
    assert peer.times == [] and tts.describe()["fallbacks"] == 0
