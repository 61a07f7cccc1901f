"""The speech actor: audio in, transcripts out; text in, audio out; voice commands carried out.

It owns the speech engines (``actors/speech/``) and a small pool of worker threads. Decoding
and synthesis run on those threads, never on the event loop and never on the actor's own
thread: a message returns a ``concurrent.futures.Future`` at once, so one client's long
utterance does not hold up another's, and the actor keeps answering ``StatusQuery`` meanwhile.
Chunks of one stream are decoded in the order they arrived (a per-stream queue and lock).

Voice commands ("spawn a coder agent", "start a swarm", "show swarm status", "list agents",
"stop all swarms") go to the hive-mind and MCP actors through their stable addresses.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

import pykka
import structlog

from actors.memory import release_freed_memory
from actors.messages import ActorStatus, Health, StatusQuery
from actors.speech.commands import Command, parse_command
from actors.speech.errors import SpeechError, UnknownStream
from actors.speech.factory import build_stt, build_tts
from actors.speech.messages import RunVoiceCommand, SttCancel, SttFeed, SttFinish, SttOpen, Synthesize, VoiceReply
from actors.speech.settings import SpeechSettings
from actors.speech.stt import SpeechToText, SttStream, Transcript
from actors.speech.tts import Speech, TextToSpeech
from supervisor import Address, ChildContext, SupervisionError

__all__ = ["SpeechActor"]


log = structlog.get_logger("actors.speech")
T = TypeVar("T")


def _build(name: str, build: Callable[[], T]) -> tuple[T | None, str | None]:
    """An engine, or why there is none: a machine without espeak-ng still transcribes (and the
    daemon still runs); the actor reports what is missing instead of crash-looping."""
    try:
        return build(), None
    except (SpeechError, OSError) as exc:
        log.warning("speech.engine_unavailable", engine=name, reason=str(exc))
        return None, f"{name} unavailable: {exc}"


class _Stream:
    """One client's utterance in progress: chunks queued, decoded in arrival order."""

    def __init__(self, engine: SttStream) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.pending: collections.deque[bytes] = collections.deque()

    def drain(self) -> Transcript | None:
        latest = None
        with self.lock:
            while self.pending:
                partial = self.engine.feed(self.pending.popleft())
                if partial is not None:
                    latest = partial
        return latest


class SpeechActor(pykka.ThreadingActor):
    supervision: ChildContext

    def __init__(self, settings: SpeechSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SpeechSettings()
        self._stt: SpeechToText | None = None
        self._tts: TextToSpeech | None = None
        self._stt_problem: str | None = None
        self._tts_problem: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._commands: ThreadPoolExecutor | None = None
        self._streams: dict[str, _Stream] = {}
        self._served = collections.Counter[str]()

    def on_start(self) -> None:
        settings = self.settings
        self._stt, self._stt_problem = _build("speech to text", lambda: build_stt(settings))
        self._tts, self._tts_problem = _build("text to speech", lambda: build_tts(settings))
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="speech")
        # commands wait on other actors (seconds, at worst minutes): never on the decoders' threads
        self._commands = ThreadPoolExecutor(2, thread_name_prefix="speech-command")
        self.supervision.on_exit(self._release)  # also after a kill, which runs no on_stop
        log.info("speech.started", stt=getattr(self._stt, "name", None),
                 tts=getattr(self._tts, "name", None))

    def _stt_or_raise(self) -> SpeechToText:
        if self._stt is None:
            raise SpeechError(self._stt_problem or "speech to text unavailable")
        return self._stt

    def _tts_or_raise(self) -> TextToSpeech:
        if self._tts is None:
            raise SpeechError(self._tts_problem or "text to speech unavailable")
        return self._tts

    def on_stop(self) -> None:
        self._release()

    def _release(self) -> None:
        """Streams, pools and engines go with the incarnation (each is large: a decoder holds
        its model), however the incarnation ended."""
        for stream in self._streams.values():
            stream.engine.close()
        self._streams.clear()
        for pool in (self._pool, self._commands):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        if self._stt is not None:
            self._stt.close()
        self._stt = self._tts = None
        release_freed_memory()

    def on_failure(self, *_exc: Any) -> None:
        self.on_stop()

    # -- messages --------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SttOpen):
            return self._open(message)
        if isinstance(message, SttFeed):
            feeding = self._stream(message.stream)
            feeding.pending.append(message.pcm16)
            return self._submit(feeding.drain)
        if isinstance(message, SttFinish):
            finishing = self._stream(message.stream)
            del self._streams[message.stream]
            return self._submit(lambda: self._finish(finishing))
        if isinstance(message, SttCancel):
            cancelled = self._streams.pop(message.stream, None)
            if cancelled is not None:
                self._submit(lambda: _close(cancelled))
            return None
        if isinstance(message, Synthesize):
            tts = self._tts_or_raise()
            return self._submit(lambda: self._synthesize(tts, message))
        if isinstance(message, RunVoiceCommand):
            assert self._commands is not None
            return self._commands.submit(self._voice_command, message.text)
        if isinstance(message, StatusQuery):
            return self._status()
        return super().on_receive(message)

    def _submit(self, work: Callable[[], Any]) -> Future[Any]:
        assert self._pool is not None
        return self._pool.submit(work)

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStream(f"no speech stream {stream_id!r} (send stt start first)")
        return stream

    def _open(self, message: SttOpen) -> None:
        stt = self._stt_or_raise()
        old = self._streams.pop(message.stream, None)
        if old is not None:
            self._submit(lambda: _close(old))
        self._streams[message.stream] = _Stream(stt.open_stream(message.sample_rate))

    def _finish(self, stream: _Stream) -> Transcript:
        try:
            stream.drain()
            with stream.lock:
                final = stream.engine.finish()
        finally:
            _close(stream)
        self._served["transcripts"] += 1
        if final.fallback_reason:
            self._served["stt_fallbacks"] += 1
        return final

    def _synthesize(self, tts: TextToSpeech, message: Synthesize) -> Speech:
        text = message.text.strip()
        if not text:
            raise SpeechError("tts needs a non-empty text")
        if len(text) > self.settings.max_text_chars:
            raise SpeechError(f"text is {len(text)} characters; the limit is "
                              f"{self.settings.max_text_chars}")
        speech = tts.synthesize(text, message.voice, message.speed)
        self._served["syntheses"] += 1
        if speech.fallback_reason:
            self._served["tts_fallbacks"] += 1
        return speech

    # -- voice commands --------------------------------------------------------------------

    def _voice_command(self, text: str) -> VoiceReply:
        command = parse_command(text)
        if command is None:
            heard = text if len(text) <= 80 else f"{text[:77]}..."
            return VoiceReply(None, f"Sorry, I did not understand: {heard!r}.", False)
        try:
            reply = self._execute(command)
        except (SupervisionError, SpeechError) as exc:
            return VoiceReply(command.kind, f"I could not {command.phrase}: {exc}", False)
        except Exception as exc:  # noqa: BLE001 - a peer's failure becomes a spoken answer
            log.warning("speech.command_failed", command=command.kind, error=repr(exc))
            return VoiceReply(command.kind, f"I could not {command.phrase}: {exc}", False)
        self._served["commands"] += 1
        return reply

    def _sibling(self, name: str) -> Address:
        return self.supervision.sibling(name)

    def _execute(self, command: Command) -> VoiceReply:
        from actors.hive_mind.messages import ListSwarms, SpawnRequest, SpawnSwarm, StopSwarm
        from actors.mcp.messages import CallTool, GetAgents

        kind = command.kind
        if kind == "spawn_agent":
            agent_type = command.agent_type or "generic"
            result = self._sibling(self.settings.mcp).ask(
                CallTool("agent_spawn", {"agentType": agent_type})).result(15)
            return VoiceReply(kind, f"Spawned a {agent_type} agent, {result.get('agentId', '')}.",
                              True)
        if kind == "start_swarm":
            accepted = self._sibling(self.settings.hive_mind).ask(
                SpawnSwarm(SpawnRequest("Swarm started by voice command")), timeout=10)
            return VoiceReply(kind, f"Starting a swarm, {accepted.session.id[:8]}.", True)
        if kind == "swarm_status":
            sessions = self._sibling(self.settings.hive_mind).ask(ListSwarms(), timeout=10).sessions
            active = [s for s in sessions if s.status in ("spawning", "active")]
            workers = sum(len(s.workers) for s in active)
            return VoiceReply(kind, f"{_count(len(active), 'swarm')} active, with "
                                    f"{_count(workers, 'worker')}.", True)
        if kind == "list_agents":
            telemetry = self._sibling(self.settings.mcp).ask(GetAgents())
            agents = telemetry.agents if telemetry is not None else ()
            kinds = collections.Counter(a.type for a in agents)
            detail = ", ".join(_count(n, t) for t, n in sorted(kinds.items()))
            return VoiceReply(kind, f"There {'is' if len(agents) == 1 else 'are'} "
                                    f"{_count(len(agents), 'agent')}{': ' + detail if detail else ''}.",
                              True)
        if kind == "stop_swarms":
            hive = self._sibling(self.settings.hive_mind)
            stopping = 0
            for session in hive.ask(ListSwarms(), timeout=10).sessions:
                if session.status in ("active", "paused"):
                    hive.ask(StopSwarm(session.id), timeout=10)
                    stopping += 1
            return VoiceReply(kind, f"Stopping {_count(stopping, 'swarm')}.", True)
        return VoiceReply(kind, f"I do not know how to {command.phrase}.", False)

    def _status(self) -> ActorStatus:
        detail: dict[str, Any] = {"streams": len(self._streams), **self._served}
        health: Health = "healthy"
        reason = ""
        problems = [p for p in (self._stt_problem, self._tts_problem) if p]
        if problems:
            health, reason = "degraded", "; ".join(problems)
        for name, engine in (("stt", self._stt), ("tts", self._tts)):
            describe = getattr(engine, "describe", None)
            info = describe() if callable(describe) else {"provider": getattr(engine, "name", "")}
            detail[name] = info
            breaker = info.get("breaker", {}) if isinstance(info, dict) else {}
            if not problems and isinstance(breaker, dict) and breaker.get("state") not in (
                    None, "closed"):
                health = "degraded"
                reason = f"{name} provider breaker {breaker.get('state')}: using the offline fallback"
        return ActorStatus("speech", health, reason, MappingProxyType(detail))


def _close(stream: _Stream) -> None:
    with stream.lock:
        stream.engine.close()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
