"""``/ws/speech``: voice in, transcripts and voice commands out, speech back.

Client: ``{type:"stt", action:"start", sampleRate?, language?}``, binary chunks of 16-bit
little-endian mono PCM, ``{type:"stt", action:"stop"}``; ``{type:"tts", text, voice?, speed?}``;
``{type:"voice_command", text, speak?}``. Server: ``connected``, ``stt_started``,
``transcription {text, isFinal, timestamp}`` (partials while audio streams, a final one at
stop), ``stt_stopped``, ``tts_audio`` (a JSON header) followed by one binary WAV,
``voice_response {command, text, ok}``, ``error``. Every bad input gets an ``error`` and the
stream stays usable. The work happens on the speech actor's threads, never on this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from aiohttp import web

from actors.speech.commands import parse_command
from actors.speech.errors import SpeechError
from actors.speech.messages import (
    RunVoiceCommand,
    SttCancel,
    SttFeed,
    SttFinish,
    SttOpen,
    Synthesize,
    VoiceReply,
)
from actors.speech.settings import SpeechSettings
from supervisor import SupervisionError
from transport.ws import Connection, Incoming, guarded, messages, now_ms, open_ws, release

__all__ = ["CONFIRM_WITHIN_S", "NEEDS_CONFIRMATION", "WORK_TIMEOUT_S", "add_routes", "speech_ws"]


MIN_RATE, MAX_RATE = 8_000, 48_000
WORK_TIMEOUT_S = 120.0
# A grammar-bound recogniser maps any speech onto the nearest command, so a spoken command that
# destroys something runs only when heard twice within this many seconds (typed ones run at once).
CONFIRM_WITHIN_S = 15.0
NEEDS_CONFIRMATION = frozenset({"stop_swarms"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/speech", speech_ws)


class _Client:
    """This connection's utterance, if one is open."""

    def __init__(self) -> None:
        self.stream: str | None = None
        self.rate = 16_000
        self.received = 0
        self.last_partial = ""
        self.unconfirmed: tuple[str, float] | None = None  # (command kind, heard at)


async def _work(conn: Connection, message: Any) -> Any:
    """Ask the speech actor; it answers with a future that its worker threads complete."""
    future = await conn.services.address("speech").ask_async(message, timeout=10)
    return await asyncio.wait_for(asyncio.wrap_future(future), WORK_TIMEOUT_S)


async def speech_ws(request: web.Request) -> web.StreamResponse:
    opened = await open_ws(request, "/ws/speech")
    if not isinstance(opened, Connection):
        return opened
    conn = opened
    client = _Client()
    try:
        await conn.send_json({"type": "connected", "timestamp": now_ms(),
                              "data": {"sampleRates": [MIN_RATE, MAX_RATE], "format": "pcm16le"}})
        async for incoming in messages(conn):
            await guarded(conn, _handle(conn, client, incoming))
    finally:
        if client.stream is not None:
            with contextlib.suppress(SupervisionError):
                conn.services.address("speech").tell(SttCancel(client.stream))
        await release(conn)
    return conn.ws


async def _handle(conn: Connection, client: _Client, incoming: Incoming) -> None:
    try:
        if incoming.binary is not None:
            await _audio(conn, client, incoming.binary)
        else:
            assert incoming.data is not None
            await _control(conn, client, incoming.data)
    except (SpeechError, ValueError) as exc:
        await conn.error(str(exc))
    except SupervisionError as exc:
        await conn.error(f"speech unavailable: {exc}")
    except TimeoutError:
        await conn.error("speech engine timed out")


async def _control(conn: Connection, client: _Client, data: dict[str, Any]) -> None:
    kind = data["type"]
    if kind == "stt":
        action = data.get("action")
        if action == "start":
            await _start(conn, client, data)
        elif action == "stop":
            await _stop(conn, client, speak=data.get("speak") is True)
        else:
            await conn.error("stt needs action 'start' or 'stop'")
    elif kind == "tts":
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            await conn.error("tts needs a non-empty 'text'")
            return
        max_chars = _limits(conn).max_text_chars
        if len(text) > max_chars:
            await conn.error(f"tts text of {len(text)} characters is over the {max_chars} limit")
            return
        await _speak(conn, text, data.get("voice"), data.get("speed"))
    elif kind == "voice_command":
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            await conn.error("voice_command needs a non-empty 'text'")
            return
        max_chars = _limits(conn).max_text_chars
        if len(text) > max_chars:
            await conn.error(f"voice_command text of {len(text)} characters is over the "
                             f"{max_chars} limit")
            return
        await _command(conn, text, speak=data.get("speak") is True)
    elif kind == "ping":
        await conn.send_json({"type": "pong", "timestamp": data.get("timestamp", now_ms())})
    else:
        await conn.error(f"unknown message type {kind!r}",
                         known=["stt", "tts", "voice_command", "ping"])


async def _start(conn: Connection, client: _Client, data: dict[str, Any]) -> None:
    language = data.get("language")
    if language is not None and (not isinstance(language, str) or len(language) > 35):
        await conn.error("language must be a language tag such as 'en' or 'en-US'")
        return
    rate = data.get("sampleRate", 16_000)
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        await conn.error(f"sampleRate must be an integer in [{MIN_RATE}, {MAX_RATE}]")
        return
    speech = conn.services.address("speech")
    if client.stream is not None:
        speech.tell(SttCancel(client.stream))
    # The stream is the client's from the moment it is asked for: an open that fails or
    # times out (and may still happen later) is cancelled, never left holding a decoder.
    client.stream = uuid.uuid4().hex
    try:
        await speech.ask_async(SttOpen(client.stream, rate, language), timeout=10)
    except BaseException:
        with contextlib.suppress(SupervisionError):
            speech.tell(SttCancel(client.stream))
        client.stream = None
        raise
    client.rate, client.received, client.last_partial = rate, 0, ""
    await conn.send_json({"type": "stt_started", "timestamp": now_ms(),
                          "data": {"sampleRate": rate}})


def _limits(conn: Connection) -> SpeechSettings:
    return conn.services.settings("speech", SpeechSettings)


async def _audio(conn: Connection, client: _Client, chunk: bytes) -> None:
    if client.stream is None:
        await conn.error("audio received before {type:'stt', action:'start'}")
        return
    if len(chunk) % 2:
        await conn.error(f"audio chunk of {len(chunk)} bytes is not 16-bit PCM (odd byte count)")
        return
    max_chunk = _limits(conn).max_chunk_bytes
    if len(chunk) > max_chunk:
        await conn.error(f"audio chunk of {len(chunk)} bytes is over the {max_chunk}-byte limit")
        return
    max_seconds = _limits(conn).max_utterance_s
    if (client.received + len(chunk)) / 2 / client.rate > max_seconds:
        await conn.error(f"utterance longer than {max_seconds:g} s: chunk dropped; send stop")
        return
    client.received += len(chunk)
    partial = await _work(conn, SttFeed(client.stream, chunk))
    if partial is not None and partial.text and partial.text != client.last_partial:
        client.last_partial = partial.text
        await conn.send_json({"type": "transcription", "data": {
            "text": partial.text, "isFinal": False, "timestamp": now_ms()}})


async def _stop(conn: Connection, client: _Client, speak: bool) -> None:
    if client.stream is None:
        await conn.error("stt stop without a start")
        return
    stream, client.stream = client.stream, None
    final = await _work(conn, SttFinish(stream))
    data: dict[str, Any] = {"text": final.text, "isFinal": True, "timestamp": now_ms(),
                            "provider": final.provider}
    if final.fallback_reason:
        data["fallback"] = final.fallback_reason
    await conn.send_json({"type": "transcription", "data": data})
    await conn.send_json({"type": "stt_stopped", "timestamp": now_ms()})
    if not final.text.strip():
        return
    command = parse_command(final.text)
    if command is None:
        return  # a transcript that is not a command is just a transcript
    if command.kind in NEEDS_CONFIRMATION and conn.authorized:
        now = time.monotonic()
        previous = client.unconfirmed
        if previous is None or previous[0] != command.kind or now - previous[1] > CONFIRM_WITHIN_S:
            client.unconfirmed = (command.kind, now)
            text = (f"Say '{command.phrase}' again within {CONFIRM_WITHIN_S:g} seconds to "
                    f"confirm.")
            await conn.send_json({"type": "voice_response", "timestamp": now_ms(), "data": {
                "command": command.kind, "text": text, "ok": False, "confirm": True}})
            if speak:
                await _speak(conn, text, None, None)
            return
    client.unconfirmed = None
    await _command(conn, final.text, speak)


async def _command(conn: Connection, text: str, speak: bool) -> None:
    if not conn.authorized:
        await conn.send_json({"type": "voice_response", "timestamp": now_ms(), "data": {
            "command": None, "text": "Voice commands need the API token.", "ok": False}})
        await conn.refuse_change("a voice command")
        return
    reply: VoiceReply = await _work(conn, RunVoiceCommand(text))
    await conn.send_json({"type": "voice_response", "timestamp": now_ms(),
                          "data": {"command": reply.command, "text": reply.text, "ok": reply.ok}})
    if speak:
        await _speak(conn, reply.text, None, None)


async def _speak(conn: Connection, text: str, voice: Any, speed: Any) -> None:
    if voice is not None and not isinstance(voice, str):
        await conn.error("tts voice must be a string")
        return
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float)
                              or not 0.25 <= speed <= 4.0):
        await conn.error("tts speed must be a number in [0.25, 4]")
        return
    speech = await _work(conn, Synthesize(text, voice, float(speed) if speed else None))
    header: dict[str, Any] = {"type": "tts_audio", "timestamp": now_ms(), "format": "wav",
                              "sampleRate": speech.sample_rate, "bytes": len(speech.wav),
                              "provider": speech.provider}
    if speech.fallback_reason:
        header["fallback"] = speech.fallback_reason
    await conn.send_json(header)
    await conn.send_bytes(speech.wav)
