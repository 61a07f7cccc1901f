"""PCM16 little-endian mono helpers: validation, resampling and WAV framing.

Every engine works on one fixed rate (pocketsphinx: 16 kHz) while clients send whatever their
microphone gives (8 to 48 kHz), so audio is resampled at the edge. The resampler is a
polyphase windowed-sinc filter in NumPy (SciPy is not a runtime dependency). It is
*streaming*: :class:`StreamResampler` keeps the filter's history between chunks, so audio fed
in 100 ms pieces comes out identical to the whole clip resampled at once, with no clicks at
chunk boundaries that would hurt recognition.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass

import numpy as np

from actors.speech.errors import AudioError

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "SAMPLE_BYTES",
    "Pcm16Audio",
    "StreamResampler",
    "check_rate",
    "decode_wav",
    "duration_s",
    "encode_wav",
    "resample",
    "validate_pcm16",
]


MIN_RATE = 8_000
MAX_RATE = 48_000
SAMPLE_BYTES = 2
# Zero crossings of the sinc on each side: 16 keeps the passband flat to ~90 % of Nyquist and
# the stopband near -80 dB with a Kaiser window, at ~40-90 taps per output sample.
_ZERO_CROSSINGS = 16
_KAISER_BETA = 8.0
_BLOCK = 8_192  # output samples per vectorised step: bounds the gather matrix's memory


@dataclass(frozen=True, slots=True)
class Pcm16Audio:
    """Mono 16-bit little-endian samples and their rate."""

    pcm16: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return duration_s(self.pcm16, self.sample_rate)


def check_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` if it lies in [8000, 48000] Hz, else raise :class:`AudioError`."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
        raise AudioError(f"sample rate must be an integer, got {sample_rate!r}")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioError(f"sample rate {sample_rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    return sample_rate


def validate_pcm16(pcm16: bytes) -> None:
    """Raise :class:`AudioError` unless ``pcm16`` is a whole number of 16-bit samples."""
    if not isinstance(pcm16, bytes | bytearray | memoryview):
        raise AudioError(f"PCM16 audio must be bytes, got {type(pcm16).__name__}")
    if len(pcm16) % SAMPLE_BYTES:
        raise AudioError(
            f"PCM16 audio must have an even number of bytes (2 per sample), got {len(pcm16)} bytes")


def duration_s(pcm16: bytes, sample_rate: int) -> float:
    return len(pcm16) / SAMPLE_BYTES / sample_rate


def _to_float(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32)


def _to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


def _filter_bank(up: int, down: int) -> tuple[np.ndarray, int]:
    """One row of taps per output phase, and the half-width ``H`` in input samples.

    Output ``n`` sits at input position ``t = n*down/up``; its taps weigh inputs
    ``floor(t)-H+1 .. floor(t)+H``. The cutoff is the lower of the two Nyquist rates.
    """
    cutoff = min(1.0, up / down)  # relative to the input's Nyquist
    half = math.ceil(_ZERO_CROSSINGS / cutoff)
    phases = np.arange(up, dtype=np.float64)[:, None] / up
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)[None, :]
    distance = phases - offsets  # t - k for each phase and tap
    # The continuous Kaiser window, evaluated at each tap's fractional distance.
    inside = np.clip(1.0 - (distance / half) ** 2, 0.0, None)
    window = np.i0(_KAISER_BETA * np.sqrt(inside)) / np.i0(_KAISER_BETA)
    taps = cutoff * np.sinc(cutoff * distance) * window
    taps /= taps.sum(axis=1, keepdims=True)  # exact unity gain at DC for every phase
    return taps.astype(np.float32), half


class StreamResampler:
    """Resample a PCM16 stream chunk by chunk; ``feed`` then ``flush`` equals :func:`resample`.

    Not thread-safe: one per stream.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = check_rate(from_rate)
        self.to_rate = check_rate(to_rate)
        g = math.gcd(from_rate, to_rate)
        self._up, self._down = to_rate // g, from_rate // g
        self._passthrough = self._up == self._down
        if not self._passthrough:
            self._taps, self._half = _filter_bank(self._up, self._down)
            # Input history; index 0 is absolute input sample ``_start`` (negative: zero padding).
            self._buf = np.zeros(self._half, dtype=np.float32)
            self._start = -self._half
        self._n_in = 0
        self._n_out = 0
        self._flushed = False

    def feed(self, pcm16: bytes) -> bytes:
        """Resample what can be computed so far (the filter needs ``H`` samples of look-ahead)."""
        validate_pcm16(pcm16)
        if self._flushed:
            raise AudioError("resampler already flushed")
        if self._passthrough:
            return bytes(pcm16)
        samples = _to_float(bytes(pcm16))
        self._buf = np.concatenate([self._buf, samples])
        self._n_in += samples.size
        # Output n is ready once input floor(n*down/up) + H exists (index < n_in).
        last_ready = ((self._n_in - self._half) * self._up - 1) // self._down  # largest n with base+H <= n_in-1
        return self._produce(last_ready + 1)

    def flush(self) -> bytes:
        """The remaining outputs, as if the input were followed by silence."""
        if self._flushed:
            return b""
        self._flushed = True
        if self._passthrough:
            return b""
        total = -(-self._n_in * self._up // self._down)  # ceil: outputs whose position < n_in
        self._buf = np.concatenate([self._buf, np.zeros(self._half, dtype=np.float32)])
        return self._produce(total)

    def _produce(self, stop: int) -> bytes:
        if stop <= self._n_out:
            return b""
        width = 2 * self._half
        parts = []
        for first in range(self._n_out, stop, _BLOCK):
            n = np.arange(first, min(stop, first + _BLOCK), dtype=np.int64)
            base = (n * self._down) // self._up
            phase = (n * self._down) % self._up
            index = (base - self._half + 1 - self._start)[:, None] + np.arange(width)[None, :]
            parts.append(np.einsum("ij,ij->i", self._buf[index], self._taps[phase]))
        self._n_out = stop
        # Drop history no later output can reach.
        keep_from = (stop * self._down) // self._up - self._half + 1
        drop = max(0, keep_from - self._start)
        if drop:
            self._buf = self._buf[drop:]
            self._start += drop
        return _to_pcm16(np.concatenate(parts))


def resample(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole clip; its duration is kept to within one output sample."""
    resampler = StreamResampler(from_rate, to_rate)
    return resampler.feed(pcm16) + resampler.flush()


def encode_wav(pcm16: bytes, sample_rate: int) -> bytes:
    """A complete mono 16-bit PCM WAV file."""
    validate_pcm16(pcm16)
    check_rate(sample_rate)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_BYTES)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return out.getvalue()


def decode_wav(data: bytes) -> Pcm16Audio:
    """Parse a 16-bit PCM WAV; several channels are averaged to mono.

    The rate is not limited here (a TTS engine may answer at 24 kHz, or any rate); callers
    that feed a recogniser check it with :func:`check_rate`.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a PCM WAV file: {exc}") from exc
    if width != SAMPLE_BYTES:
        raise AudioError(f"WAV must be 16-bit PCM, got {8 * width}-bit samples")
    if rate <= 0:
        raise AudioError(f"WAV has an invalid sample rate {rate}")
    frames = frames[: len(frames) - len(frames) % (SAMPLE_BYTES * channels)]
    if channels > 1:
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.float32)
        frames = _to_pcm16(samples.mean(axis=1))
    return Pcm16Audio(frames, rate)
