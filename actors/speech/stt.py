"""Speech to text: one protocol, three engines.

- :class:`PocketSphinxStt`: offline, the default. Decodes against the JSGF grammar built from
  ``commands.py``, so the voice commands are recognised exactly (pocketsphinx's open-vocabulary
  model mis-hears even synthetic speech); anything else is forced onto the nearest command or
  comes back empty. Streams give partial hypotheses while audio arrives.
- :class:`HttpWhisperStt`: an OpenAI-compatible ``/v1/audio/transcriptions`` server (a local
  Whisper server, or the real API). Open vocabulary; no partials.
- :class:`FasterWhisperStt`: optional, in-process, from a local CTranslate2 model folder only.

All are blocking and thread-safe: the speech actor calls them from worker threads, several
streams at once.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog

from actors.speech import audio
from actors.speech.commands import grammar_words, jsgf_grammar
from actors.speech.errors import AudioError, ProviderError, SpeechError
from actors.speech.http_client import FilePart, join_url, multipart, post
from actors.speech.lexicon import dictionary_text
from actors.speech.settings import SpeechSettings

__all__ = [
    "BufferedStream",
    "FasterWhisperStt",
    "HttpWhisperStt",
    "PocketSphinxSettings",
    "PocketSphinxStream",
    "PocketSphinxStt",
    "SpeechToText",
    "SttStream",
    "Transcript",
]


log = structlog.get_logger("actors.speech.stt")

# the defaults of an engine made by hand (tests, benches) are the settings' own
_DEFAULTS = SpeechSettings()


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine heard. ``fallback_reason`` is set when the configured engine failed and
    the offline one answered instead (the client may want to know the quality dropped)."""

    text: str
    is_final: bool
    provider: str
    fallback_reason: str | None = None


@runtime_checkable
class SttStream(Protocol):
    """One utterance fed in chunks. Not shared between threads, except ``close`` (always safe)."""

    def feed(self, pcm16: bytes) -> Transcript | None: ...
    def finish(self) -> Transcript: ...
    def close(self) -> None: ...


@runtime_checkable
class SpeechToText(Protocol):
    name: str
    sample_rate: int

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript: ...
    def open_stream(self, sample_rate: int) -> SttStream: ...
    def close(self) -> None: ...


def _check_length(n_bytes: int, sample_rate: int, limit_s: float) -> None:
    if n_bytes / 2 / sample_rate > limit_s:
        raise AudioError(f"utterance longer than {limit_s:g} s")


# ---------------------------------------------------------------------------------------------
# Buffered streams: engines without partial results transcribe the whole utterance at the end
# ---------------------------------------------------------------------------------------------


class BufferedStream:
    """Collects the audio and hands it to ``transcribe`` on :meth:`finish`; no partials."""

    def __init__(self, transcribe: Callable[[bytes, int], Transcript], sample_rate: int,
                 max_utterance_s: float = _DEFAULTS.max_utterance_s) -> None:
        self.sample_rate = audio.check_rate(sample_rate)
        self._transcribe = transcribe
        self._limit_s = max_utterance_s
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False

    @property
    def pcm16(self) -> bytes:
        """The audio so far (the fallback wrapper re-sends it to another engine)."""
        return b"".join(self._chunks)

    def feed(self, pcm16: bytes) -> Transcript | None:
        if self._done:
            raise SpeechError("stream already finished")
        audio.validate_pcm16(pcm16)
        _check_length(self._size + len(pcm16), self.sample_rate, self._limit_s)
        self._chunks.append(bytes(pcm16))
        self._size += len(pcm16)
        return None

    def finish(self) -> Transcript:
        if self._done:
            raise SpeechError("stream already finished")
        self._done = True
        data, self._chunks = self.pcm16, []
        return self._transcribe(data, self.sample_rate)

    def close(self) -> None:
        self._done = True
        self._chunks = []


# ---------------------------------------------------------------------------------------------
# PocketSphinx
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PocketSphinxSettings:
    """Decoder tuning. The beams are wider than pocketsphinx's defaults: measured on espeak-ng
    commands, they fix narrow-band (8 kHz) audio at ~30 % more CPU, still far above real time.
    ``bestpath`` stays off: with a grammar, the lattice rescoring dropped final words.

    Cepstral mean normalisation is live (it adapts across a decoder's utterances) and starts
    from a prior per band: audio sampled below ``narrowband_below_hz`` (telephone-band, nothing
    above 4 kHz) has a very different cepstral mean, and with the wide-band prior a fresh
    decoder recognised 4 of 14 commands at 8 kHz instead of 13. So each band has its own
    decoders. The priors are the means measured over the espeak-ng command set."""

    beam: float = 1e-80
    pbeam: float = 1e-80
    wbeam: float = 1e-60
    pool_size: int = 2  # decoders kept ready between utterances
    max_decoders: int = 16  # decoders alive at once (streams beyond wait, then fail)
    acquire_timeout_s: float = 5.0
    max_utterance_s: float = _DEFAULTS.max_utterance_s
    narrowband_below_hz: int = 16_000
    cmn_wide: str = "61.8,2.9,-3.0,26.1,-18.8,-2.9,-2.2,-22.1,3.6,-14.1,8.1,-4.0,-0.8"
    cmn_narrow: str = "45.1,18.1,-30.2,44.1,-33.7,6.4,-4.7,-19.4,6.2,-15.2,7.2,-3.8,-1.1"


class _DecoderPool:
    """A few ready decoders; more are made on demand up to ``max_decoders``.

    A decoder holds one utterance at a time, so each stream takes one for its whole life.
    """

    def __init__(self, factory: Callable[[], Any], settings: PocketSphinxSettings) -> None:
        self._factory = factory
        self._settings = settings
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._closed = False
        self._slots = threading.BoundedSemaphore(settings.max_decoders)
        self.created = 0
        self.in_use = 0

    def warm(self, count: int) -> None:
        for _ in range(count):
            decoder = self._factory()
            with self._lock:
                self.created += 1
                self._idle.append(decoder)

    def acquire(self, wait: bool = True) -> Any:
        """A decoder; waits up to ``acquire_timeout_s`` for one to come free, or not at all
        (``wait=False``: a stream is opened on the speech actor's own thread, which must not
        block, and a live stream holds its decoder for as long as its client talks)."""
        if not self._slots.acquire(timeout=self._settings.acquire_timeout_s if wait else 0):
            raise ProviderError("pocketsphinx", f"all {self._settings.max_decoders} decoders busy", transient=True)
        with self._lock:
            self.in_use += 1
            if self._idle:
                return self._idle.pop()
        try:
            decoder = self._factory()
        except BaseException:
            self._give_slot()
            raise
        with self._lock:
            self.created += 1
        return decoder

    def close(self) -> None:
        """Drop the idle decoders (each holds its model in C memory, which Python's collector
        does not count) and keep none returned later."""
        with self._lock:
            self._idle.clear()
            self._closed = True

    def release(self, decoder: Any, healthy: bool = True) -> None:
        with self._lock:
            if healthy and not self._closed and len(self._idle) < self._settings.pool_size:
                self._idle.append(decoder)
        self._give_slot()

    def _give_slot(self) -> None:
        with self._lock:
            self.in_use -= 1
        self._slots.release()

    def describe(self) -> dict[str, int]:
        with self._lock:
            return {"idle": len(self._idle), "in_use": self.in_use, "created": self.created}


def _hyp_text(decoder: Any) -> str:
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None and hyp.hypstr else ""


class PocketSphinxStt:
    """Offline recognition of the command grammar with pocketsphinx 5's bundled en-us model.

    The grammar is :func:`commands.jsgf_grammar`, whose words all have pronunciations (see
    ``lexicon.py``). Each decoder loads a dictionary of the grammar's words only, which makes
    set-up ~10 ms instead of ~0.5 s with the full CMU dictionary.
    """

    name = "pocketsphinx"
    sample_rate = 16_000

    def __init__(self, settings: PocketSphinxSettings | None = None) -> None:
        try:  # the [speech] extra, imported here so that importing stt stays cheap
            import pocketsphinx
        except ImportError:
            raise SpeechError("pocketsphinx is not installed: pip install 'hive-supervisor[speech]' "
                              "(make run installs it)") from None

        self._ps = pocketsphinx
        self.settings = settings or PocketSphinxSettings()
        self.grammar = jsgf_grammar()
        # Decoders read their grammar and dictionary from files: keep them for this engine's life.
        self._files = tempfile.TemporaryDirectory(prefix="hive-speech-")
        self._jsgf_path = os.path.join(self._files.name, "commands.gram")
        self._dict_path = os.path.join(self._files.name, "commands.dict")
        with open(self._jsgf_path, "w", encoding="utf-8") as f:
            f.write(self.grammar)
        with open(self._dict_path, "w", encoding="utf-8") as f:
            f.write(dictionary_text(grammar_words()))
        self._pools = {band: _DecoderPool(functools.partial(self._new_decoder, band), self.settings)
                       for band in ("wide", "narrow")}
        self._pools["wide"].warm(self.settings.pool_size)  # narrow-band decoders are made on first use
        log.info("speech.stt.ready", provider=self.name, decoders=self.settings.pool_size)

    def _new_decoder(self, band: str) -> Any:
        s = self.settings
        try:
            return self._ps.Decoder(
                lm=None, jsgf=self._jsgf_path, dict=self._dict_path, samprate=self.sample_rate,
                beam=s.beam, pbeam=s.pbeam, wbeam=s.wbeam, bestpath=False, loglevel="FATAL",
                cmn="live", cmninit=s.cmn_narrow if band == "narrow" else s.cmn_wide,
            )
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(self.name, f"cannot set up a decoder: {exc}", transient=False) from exc

    def pool_for(self, sample_rate: int) -> _DecoderPool:
        """The decoders for audio recorded at ``sample_rate`` (see the settings' CMN priors)."""
        return self._pools["narrow" if sample_rate < self.settings.narrowband_below_hz else "wide"]

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """A whole utterance at once.

        Not ``full_utt``: normalising a short clip by its own mean lost "architect",
        "optimizer" and "generic" to "coder"; the live mean with a prior recognised all.
        """
        audio.validate_pcm16(pcm16)
        audio.check_rate(sample_rate)
        _check_length(len(pcm16), sample_rate, self.settings.max_utterance_s)
        pcm = audio.resample(pcm16, sample_rate, self.sample_rate)
        pool = self.pool_for(sample_rate)
        decoder = pool.acquire()
        healthy = False
        try:
            decoder.start_utt()
            decoder.process_raw(pcm)
            decoder.end_utt()
            text = _hyp_text(decoder)
            healthy = True
        except RuntimeError as exc:
            raise ProviderError(self.name, f"decoding failed: {exc}", transient=False) from exc
        finally:
            pool.release(decoder, healthy)
        return Transcript(text, True, self.name)

    def open_stream(self, sample_rate: int) -> PocketSphinxStream:
        return PocketSphinxStream(self, sample_rate)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "sample_rate": self.sample_rate,
                "decoders": {band: pool.describe() for band, pool in self._pools.items()}}

    def close(self) -> None:
        """Drop the idle decoders and remove the grammar files (streams still open keep their
        decoders until they end)."""
        for pool in self._pools.values():
            pool.close()
        self._files.cleanup()


class PocketSphinxStream:
    """One utterance decoded as it arrives: ``feed`` returns the hypothesis when it changes."""

    def __init__(self, engine: PocketSphinxStt, sample_rate: int) -> None:
        self._engine = engine
        self._pool = engine.pool_for(sample_rate)
        self._resampler = audio.StreamResampler(sample_rate, engine.sample_rate)
        self._sample_rate = sample_rate
        self._lock = threading.Lock()  # close() may come from another thread than feed()
        self._fed = 0
        self._last = ""
        self._decoder: Any = self._pool.acquire(wait=False)
        try:
            self._decoder.start_utt()
        except RuntimeError as exc:
            self._pool.release(self._decoder, healthy=False)
            self._decoder = None
            raise ProviderError(engine.name, f"cannot start an utterance: {exc}", transient=False) from exc

    def feed(self, pcm16: bytes) -> Transcript | None:
        """Decode a chunk; a partial transcript when the best hypothesis changed, else None."""
        audio.validate_pcm16(pcm16)
        with self._lock:
            decoder = self._require()
            _check_length(self._fed + len(pcm16), self._sample_rate, self._engine.settings.max_utterance_s)
            self._fed += len(pcm16)
            pcm = self._resampler.feed(pcm16)
            if not pcm:
                return None
            try:
                decoder.process_raw(pcm)
                text = _hyp_text(decoder)
            except RuntimeError as exc:
                self._drop(healthy=False)
                raise ProviderError(self._engine.name, f"decoding failed: {exc}", transient=False) from exc
            if not text or text == self._last:
                return None
            self._last = text
            return Transcript(text, False, self._engine.name)

    def finish(self) -> Transcript:
        """End the utterance: the final transcript (possibly empty); the decoder goes back."""
        with self._lock:
            decoder = self._require()
            try:
                tail = self._resampler.flush()
                if tail:
                    decoder.process_raw(tail)
                decoder.end_utt()
                text = _hyp_text(decoder)
            except RuntimeError as exc:
                self._drop(healthy=False)
                raise ProviderError(self._engine.name, f"decoding failed: {exc}", transient=False) from exc
            self._drop(healthy=True)
            return Transcript(text, True, self._engine.name)

    def close(self) -> None:
        """Abandon the utterance (idempotent; a no-op after :meth:`finish`)."""
        with self._lock:
            if self._decoder is None:
                return
            try:
                self._decoder.end_utt()
                healthy = True
            except RuntimeError:
                healthy = False
            self._drop(healthy)

    def _require(self) -> Any:
        if self._decoder is None:
            raise SpeechError("stream already finished or closed")
        return self._decoder

    def _drop(self, healthy: bool) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            self._pool.release(decoder, healthy)

    def __enter__(self) -> PocketSphinxStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Whisper over HTTP (OpenAI-compatible)
# ---------------------------------------------------------------------------------------------


class HttpWhisperStt:
    """``POST {base_url}/v1/audio/transcriptions`` with the utterance as a WAV file.

    One attempt per call: retries, the breaker and the fallback live in ``resilient.py``.
    """

    name = "whisper-http"
    sample_rate = 16_000  # what Whisper models use; audio is sent at its own rate all the same

    def __init__(self, base_url: str, model: str = "whisper-1", api_key: str | None = None,
                 timeout_s: float = _DEFAULTS.http_timeout_s, language: str | None = None,
                 max_utterance_s: float = _DEFAULTS.max_utterance_s) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"stt_url must be an http(s) URL, got {base_url!r}")
        self.url = join_url(base_url, "/v1/audio/transcriptions")
        self.model = model
        self.api_key = api_key or None
        self.timeout_s = timeout_s
        self.language = language
        self.max_utterance_s = max_utterance_s

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        audio.check_rate(sample_rate)
        _check_length(len(pcm16), sample_rate, self.max_utterance_s)
        wav = audio.encode_wav(pcm16, sample_rate)
        fields = {"model": self.model, "response_format": "json"}
        if self.language:
            fields["language"] = self.language
        body, content_type = multipart(fields, (FilePart("file", "speech.wav", "audio/wav", wav),))
        data, _ = post(self.name, self.url, body, content_type, api_key=self.api_key, timeout_s=self.timeout_s)
        try:
            answer = json.loads(data)
            text = answer["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(self.name, f"unexpected answer {data[:200]!r}: {exc}", transient=False) from exc
        return Transcript(text.strip(), True, self.name)

    def open_stream(self, sample_rate: int) -> BufferedStream:
        return BufferedStream(self.transcribe, sample_rate, self.max_utterance_s)

    def close(self) -> None:
        """Nothing held between calls."""

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "url": self.url, "model": self.model}


# ---------------------------------------------------------------------------------------------
# faster-whisper (optional, local files only)
# ---------------------------------------------------------------------------------------------


class FasterWhisperStt:
    """In-process Whisper via ``faster_whisper``, from a local CTranslate2 model folder.

    Never downloads: ``model_dir`` must exist, and the model is opened with
    ``local_files_only=True``. Without the package or the folder, construction raises a
    :class:`SpeechError` that says what to install or configure.
    """

    name = "faster-whisper"
    sample_rate = 16_000

    def __init__(self, model_dir: str, device: str = "cpu", compute_type: str = "int8",
                 language: str | None = "en", max_utterance_s: float = _DEFAULTS.max_utterance_s) -> None:
        try:
            import faster_whisper
        except ImportError as exc:
            raise SpeechError(
                "stt = \"faster-whisper\" needs the faster-whisper package: "
                "`.venv/bin/pip install faster-whisper`, and faster_whisper_model_dir set to a local "
                "CTranslate2 Whisper model folder (nothing is downloaded)") from exc
        if not model_dir:
            raise SpeechError("stt = \"faster-whisper\" needs faster_whisper_model_dir: a local CTranslate2 "
                              "Whisper model folder (with model.bin); nothing is downloaded")
        if not os.path.isfile(os.path.join(model_dir, "model.bin")):
            raise SpeechError(f"faster_whisper_model_dir {model_dir!r} has no model.bin: point it at a "
                              "converted CTranslate2 Whisper model folder")
        try:
            self._model = faster_whisper.WhisperModel(model_dir, device=device, compute_type=compute_type,
                                                      local_files_only=True)
        except Exception as exc:
            raise SpeechError(f"faster-whisper cannot load {model_dir!r}: {exc}") from exc
        self.model_dir = model_dir
        self.language = language
        self.max_utterance_s = max_utterance_s
        self._lock = threading.Lock()  # one transcription at a time per model: bounded CPU

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        import numpy as np

        audio.check_rate(sample_rate)
        _check_length(len(pcm16), sample_rate, self.max_utterance_s)
        pcm = audio.resample(pcm16, sample_rate, self.sample_rate)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        try:
            with self._lock:
                segments, _info = self._model.transcribe(samples, language=self.language, beam_size=1)
                text = " ".join(seg.text.strip() for seg in segments)
        except Exception as exc:
            raise ProviderError(self.name, f"transcription failed: {exc}", transient=False) from exc
        return Transcript(text.strip(), True, self.name)

    def open_stream(self, sample_rate: int) -> BufferedStream:
        return BufferedStream(self.transcribe, sample_rate, self.max_utterance_s)

    def close(self) -> None:
        """Let go of the model (hundreds of MB) once no transcription holds it."""
        with self._lock:
            self._model = None

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "model_dir": self.model_dir}
