"""PCM16 validation, resampling and WAV framing."""

from __future__ import annotations

import numpy as np
import pytest

from actors.speech.audio import (
    StreamResampler,
    check_rate,
    decode_wav,
    encode_wav,
    resample,
    validate_pcm16,
)
from actors.speech.errors import AudioError, SpeechError


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 10_000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def test_odd_byte_count_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(AudioError, match="even number of bytes") as info:
        validate_pcm16(b"\x00\x01\x02")
    assert isinstance(info.value, ValueError) and isinstance(info.value, SpeechError)
    with pytest.raises(AudioError):
        resample(b"\x00" * 5, 16_000, 8_000)


@pytest.mark.parametrize("rate", [7_999, 48_001, 0, -16_000, 96_000])
def test_rates_outside_8k_48k_are_rejected(rate: int) -> None:
    with pytest.raises(AudioError, match="outside"):
        check_rate(rate)
    with pytest.raises(AudioError):
        resample(tone(440, 16_000), rate, 16_000)


@pytest.mark.parametrize(("src", "dst"), [(44_100, 16_000), (22_050, 16_000), (8_000, 16_000),
                                           (48_000, 16_000), (16_000, 44_100), (16_000, 16_000)])
def test_resampling_keeps_duration_and_the_tone(src: int, dst: int) -> None:
    out = np.frombuffer(resample(tone(440, src, 2.0), src, dst), dtype="<i2").astype(float)
    assert abs(out.size / dst - 2.0) <= 1 / dst  # duration kept to one output sample
    expected = 10_000 * np.sin(2 * np.pi * 440 * np.arange(out.size) / dst)
    assert np.abs(out - expected)[100:-100].max() < 20  # within 0.2 % of full scale


def test_downsampling_removes_what_the_new_rate_cannot_hold() -> None:
    out = np.frombuffer(resample(tone(7_000, 44_100), 44_100, 8_000), dtype="<i2").astype(float)
    assert np.sqrt((out[100:-100] ** 2).mean()) < 50  # a 7 kHz tone would alias to 1 kHz


def test_streaming_in_chunks_equals_resampling_at_once() -> None:
    clip = tone(300, 22_050) + tone(1_200, 22_050)
    resampler = StreamResampler(22_050, 16_000)
    chunk = 2 * 2_205  # 100 ms
    pieces = [resampler.feed(clip[i:i + chunk]) for i in range(0, len(clip), chunk)]
    assert b"".join([*pieces, resampler.flush()]) == resample(clip, 22_050, 16_000)


def test_wav_round_trip_and_stereo_downmix() -> None:
    pcm = tone(440, 16_000, 0.5)
    decoded = decode_wav(encode_wav(pcm, 16_000))
    assert decoded.pcm16 == pcm and decoded.sample_rate == 16_000 and decoded.duration_s == 0.5
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(24_000)
        w.writeframes(np.array([[100, 300]] * 10, dtype="<i2").tobytes())
    stereo = decode_wav(buf.getvalue())
    assert stereo.sample_rate == 24_000 and np.all(np.frombuffer(stereo.pcm16, "<i2") == 200)
    with pytest.raises(AudioError, match="not a PCM WAV"):
        decode_wav(b"RIFF nonsense")
