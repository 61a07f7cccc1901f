"""``/ws/speech`` end to end on a real server: espeak-ng speaks a command, the test streams it
in chunks, pocketsphinx transcribes it, and the command reaches the real MCP / hive-mind peers
(claude-flow). TTS returns real WAVs. Every bad input gets an error and the stream goes on."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.messages import StatusQuery
from actors.speech.audio import decode_wav, resample
from tests.conftest import REPO, Daemon, receive, receive_json, start_daemon


@pytest.fixture(scope="session")
def espeak() -> str:
    script = Path(REPO) / "scripts" / "install-speech.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"install-speech.sh failed:\n{done.stdout}\n{done.stderr}"
    return "espeak-ng"


def speak(espeak: str, text: str, rate: int, tmp_path: Path) -> bytes:
    """Real speech: espeak-ng writes a WAV; the project's resampler brings it to ``rate``."""
    out = tmp_path / "say.wav"
    subprocess.run([espeak, "-w", str(out), text], check=True, timeout=30)
    audio = decode_wav(out.read_bytes())
    return resample(audio.pcm16, audio.sample_rate, rate)


@pytest.fixture
async def speech_daemon(claude_flow: list[str], espeak: str, tmp_path: Path) -> AsyncIterator[Daemon]:
    config = f"""
[actors.mcp]
pool_size = 1
poll_interval_s = 0.2
state_dir = "{tmp_path / 'mcp'}"
[actors.hive_mind]
sessions_dir = "{tmp_path / 'sessions'}"
[actors.speech]
max_chunk_bytes = 65536
max_utterance_s = 8.0
max_text_chars = 300
"""
    d = await start_daemon(config)
    yield d
    await d.stop()


async def stream_utterance(ws: aiohttp.ClientWebSocketResponse, pcm: bytes, rate: int) -> list[dict[str, Any]]:
    await ws.send_json({"type": "stt", "action": "start", "sampleRate": rate})
    await receive_json(ws, "stt_started", 30)
    chunk = rate // 10 * 2  # 100 ms
    for offset in range(0, len(pcm), chunk):
        await ws.send_bytes(pcm[offset:offset + chunk])
    await ws.send_json({"type": "stt", "action": "stop"})
    seen = []
    while True:
        data = await receive_json(ws, "transcription", 30)
        seen.append(data)
        if data["data"]["isFinal"]:
            return seen


async def test_spoken_command_is_transcribed_and_carried_out(
        speech_daemon: Daemon, espeak: str, tmp_path: Path) -> None:
    d = speech_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        assert (await receive_json(ws, "connected", 30))["type"] == "connected"
        pcm = speak(espeak, "spawn a coder agent", 44_100, tmp_path)
        transcripts = await stream_utterance(ws, pcm, 44_100)
        assert transcripts[-1]["data"]["text"] == "spawn a coder agent"
        assert transcripts[-1]["data"]["isFinal"] is True
        await receive_json(ws, "stt_stopped", 30)
        reply = await receive_json(ws, "voice_response", 30)
        assert reply["data"]["command"] == "spawn_agent" and reply["data"]["ok"] is True
        assert "coder" in reply["data"]["text"]
    # the command reached the real MCP server: the agent is in the telemetry
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with d.session.get(f"{d.url}/api/agents") as r:
            agents = (await r.json())["agents"]
        if agents:
            break
        await asyncio.sleep(0.2)
    assert [a["type"] for a in agents] == ["coder"]


async def swarms_active(d: Daemon, count: int) -> None:
    async with asyncio.timeout(60):
        while True:
            async with d.session.get(f"{d.url}/api/swarms?status=active") as r:
                if (await r.json())["total"] == count:
                    return
            await asyncio.sleep(0.1)


async def test_every_command_by_voice_and_text(speech_daemon: Daemon, espeak: str, tmp_path: Path) -> None:
    d = speech_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        await receive_json(ws, "connected", 30)
        pcm = speak(espeak, "start a swarm", 16_000, tmp_path)
        transcripts = await stream_utterance(ws, pcm, 16_000)
        assert transcripts[-1]["data"]["text"] == "start a swarm"
        reply = await receive_json(ws, "voice_response", timeout=60)
        assert reply["data"]["command"] == "start_swarm" and reply["data"]["ok"] is True
        assert reply["data"]["text"].startswith("Starting a swarm, ")
        await ws.send_json({"type": "voice_command", "text": "Show swarm status"})
        reply = await receive_json(ws, "voice_response", timeout=60)
        assert reply["data"]["ok"] and reply["data"]["text"].startswith("1 swarm active")
        await ws.send_json({"type": "voice_command", "text": "list agents"})
        reply = await receive_json(ws, "voice_response", timeout=60)
        assert reply["data"]["command"] == "list_agents" and reply["data"]["ok"]
        await swarms_active(d, 1)
        await ws.send_json({"type": "voice_command", "text": "stop all swarms", "speak": True})
        reply = await receive_json(ws, "voice_response", timeout=60)
        assert reply["data"]["text"] == "Stopping 1 swarm."
        header = await receive_json(ws, "tts_audio", 30)
        audio = await receive(ws, 30)
        assert audio.type == aiohttp.WSMsgType.BINARY and len(audio.data) == header["bytes"]
        await ws.send_json({"type": "voice_command", "text": "make me a sandwich"})
        reply = await receive_json(ws, "voice_response", 30)
        assert reply["data"]["command"] is None and reply["data"]["ok"] is False


async def test_a_spoken_stop_needs_confirmation(speech_daemon: Daemon, espeak: str, tmp_path: Path) -> None:
    d = speech_daemon
    async with d.session.post(f"{d.url}/api/swarms", json={"task": "keep running"}) as r:
        assert r.status == 202
    await swarms_active(d, 1)
    pcm = speak(espeak, "stop all swarms", 16_000, tmp_path)
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        await receive_json(ws, "connected", 30)
        assert (await stream_utterance(ws, pcm, 16_000))[-1]["data"]["text"] == "stop all swarms"
        first = await receive_json(ws, "voice_response", 30)
        assert first["data"]["ok"] is False and first["data"]["confirm"] is True
        async with d.session.get(f"{d.url}/api/swarms?refresh=true") as r:
            assert [s["status"] for s in (await r.json())["swarms"]] == ["active"]
        await stream_utterance(ws, pcm, 16_000)  # heard again: now it runs
        second = await receive_json(ws, "voice_response", timeout=60)
        assert second["data"] == {"command": "stop_swarms", "ok": True, "text": "Stopping 1 swarm."}


async def test_tts_returns_wavs_that_grow_with_the_text(speech_daemon: Daemon) -> None:
    d = speech_daemon
    lengths = []
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        await receive_json(ws, "connected", 30)
        for text in ("Hello.", "Hello, the swarm is healthy and every agent is working."):
            await ws.send_json({"type": "tts", "text": text})
            header = await receive_json(ws, "tts_audio", 30)
            msg = await receive(ws, 30)
            assert msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) == header["bytes"]
            with wave.open(io.BytesIO(msg.data)) as w:
                assert w.getsampwidth() == 2 and w.getnchannels() == 1
                assert w.getframerate() == header["sampleRate"]
                lengths.append(w.getnframes())
    assert lengths[1] > 2 * lengths[0]


async def test_bad_input_gets_errors_and_the_stream_stays_usable(
        speech_daemon: Daemon, espeak: str, tmp_path: Path) -> None:
    d = speech_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        await receive_json(ws, "connected", 30)
        await ws.send_bytes(b"\x00\x00")
        assert "before" in (await receive_json(ws, "error", 30))["message"]
        for bad in ({"type": "stt", "action": "start", "sampleRate": 4000},
                    {"type": "stt", "action": "start", "sampleRate": "fast"}):
            await ws.send_json(bad)
            assert "sampleRate" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "stt", "action": "dance"})
        assert "action" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "stt", "action": "start", "sampleRate": 16000})
        await receive_json(ws, "stt_started", 30)
        await ws.send_bytes(b"\x01\x02\x03")
        assert "odd byte count" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_bytes(b"\x00" * 70_000)
        assert "over the 65536-byte limit" in (await receive_json(ws, "error", 30))["message"]
        for _ in range(5):  # 5 x 1.6 s = 8 s: the next chunk passes the utterance limit
            await ws.send_bytes(b"\x00" * 51_200)
        await ws.send_bytes(b"\x00" * 51_200)
        assert "longer than 8 s" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "stt", "action": "stop"})
        assert (await receive_json(ws, "transcription", 30))["data"]["isFinal"] is True
        await ws.send_json({"type": "stt", "action": "stop"})
        assert "without a start" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "tts", "text": "   "})
        assert "non-empty" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "tts", "text": "x" * 301})
        assert "over the 300 limit" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "tts", "text": "hi", "speed": 99})
        assert "speed" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "voice_command"})
        assert "non-empty" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "voice_command", "text": "list agents " * 50})
        assert "over the 300 limit" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_str("[" * 50_000 + "]" * 50_000)
        assert "nested too deeply" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_json({"type": "sing"})
        assert "unknown message type" in (await receive_json(ws, "error", 30))["message"]
        await ws.send_str("{broken")
        assert "malformed JSON" in (await receive_json(ws, "error", 30))["message"]
        # still usable: a real utterance goes through
        pcm = speak(espeak, "list agents", 16_000, tmp_path)
        transcripts = await stream_utterance(ws, pcm, 16_000)
        assert transcripts[-1]["data"]["text"] == "list agents"


async def test_a_dead_http_voice_falls_back_offline_and_says_so(espeak: str, tmp_path: Path) -> None:
    """A Kokoro-style server that accepts and never answers: retries time out, the breaker
    opens, espeak-ng speaks instead, and both the reply and /api/health say so."""
    from aiohttp import web

    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/v1/audio/speech", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = f"""
[actors.mcp]
enabled = false
[actors.hive_mind]
enabled = false
[actors.speech]
tts = "http"
tts_url = "http://127.0.0.1:{port}"
http_timeout_s = 0.3
[actors.health]
interval_s = 0.2
"""
    d = await start_daemon(config)
    try:
        async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
            await receive_json(ws, "connected", 30)
            await ws.send_json({"type": "tts", "text": "is anybody there"})
            header = await receive_json(ws, "tts_audio", 30)
            assert header["provider"] == "espeak-ng" and "tts-http" in header["fallback"]
            assert (await receive(ws, 30)).type == aiohttp.WSMsgType.BINARY
        async with d.session.get(f"{d.url}/api/health?refresh=true") as r:
            body = await r.json()
        speech = body["components"]["speech"]
        assert speech["health"] == "degraded" and "offline fallback" in speech["reason"]
        assert body["system_status"] == "degraded"
    finally:
        await d.stop()
        release.set()
        await runner.cleanup()


async def test_more_streams_than_decoders_fail_at_once_and_leak_nothing(speech_daemon: Daemon) -> None:
    """16 decoders: the 17th open stream is refused without blocking the speech actor (a TTS
    request meanwhile is answered), and when the clients leave every decoder is free again."""
    d = speech_daemon
    speech = d.services.address("speech")
    clients = [await d.session.ws_connect(f"{d.ws_url}/ws/speech") for _ in range(17)]
    try:
        for ws in clients:
            await receive_json(ws, "connected", 30)
            await ws.send_json({"type": "stt", "action": "start", "sampleRate": 16000})
        answers = []
        for ws in clients:
            msg = json.loads((await receive(ws, 30)).data)
            answers.append(msg["type"] if msg["type"] != "error" else msg["message"])
        assert answers.count("stt_started") == 16
        assert [a for a in answers if a != "stt_started"] == ["pocketsphinx: all 16 decoders busy"]
        await clients[0].send_json({"type": "tts", "text": "still here"})
        assert (await receive_json(clients[0], "tts_audio"))["provider"] == "espeak-ng"
    finally:
        for ws in clients:
            await ws.close()

    async def held() -> tuple[int, int]:
        """Streams the actor holds, decoders in use (closed on its worker threads, later)."""
        detail = (await speech.ask_async(StatusQuery())).detail
        return detail["streams"], sum(b["in_use"] for b in detail["stt"]["decoders"].values())

    deadline = time.monotonic() + 30
    while await held() != (0, 0) and time.monotonic() < deadline:  # cancels are told, not asked
        await asyncio.sleep(0.05)
    assert await held() == (0, 0)
