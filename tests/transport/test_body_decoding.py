"""Bodies decoded by their Content-Encoding, never past the limit (the second probe round: a
few KiB that unpack to GiBs were decoded whole, on the event loop)."""

from __future__ import annotations

import gzip
import time
import zlib

import brotli
import pytest
from backports import zstd

from transport.body_decoding import STEP_BYTES, BodyError, decode_body

BODY = b'{"nodes": [' + b",".join(b'{"id": %d}' % i for i in range(2000)) + b"]}"
ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as the RFC says
    "br": brotli.compress,
    "zstd": zstd.compress,
}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encoding_round_trips(encoding: str) -> None:
    assert decode_body(encoding, ENCODERS[encoding](BODY), 1 << 20) == BODY


def test_raw_deflate_and_concatenated_members_and_frames_are_read() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_body("deflate", raw.compress(BODY) + raw.flush(), 1 << 20) == BODY
    assert decode_body("gzip", gzip.compress(BODY) + gzip.compress(BODY), 1 << 20) == BODY * 2
    assert decode_body("zstd", zstd.compress(BODY) + zstd.compress(BODY), 1 << 20) == BODY * 2


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_cut_short_or_garbage_is_400(encoding: str) -> None:
    for raw in (ENCODERS[encoding](BODY)[:-6], b"not compressed at all"):
        with pytest.raises(BodyError) as info:
            decode_body(encoding, raw, 1 << 20)
        assert info.value.status == 400 and encoding in str(info.value)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_a_bomb_stops_at_the_limit_fast(encoding: str) -> None:
    """256 MiB of zeros against a 4 MiB limit: 413 after about one step past it, in
    milliseconds, not after unpacking it all."""
    zeros = bytes(256 << 20)
    bomb = brotli.compress(zeros, quality=1) if encoding == "br" else \
        gzip.compress(zeros, 1) if encoding == "gzip" else zstd.compress(zeros, 1)
    started = time.perf_counter()
    with pytest.raises(BodyError) as info:
        decode_body(encoding, bomb, 4 << 20)
    took = time.perf_counter() - started
    assert info.value.status == 413 and str(4 << 20) in str(info.value)
    assert took < 0.5, took  # a whole 256 MiB takes several times longer
    assert STEP_BYTES <= 1 << 20


def test_identity_and_no_encoding_pass_through() -> None:
    assert decode_body("identity", BODY, 10) == BODY  # the size was checked as sent
