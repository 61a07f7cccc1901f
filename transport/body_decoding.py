"""A request body decoded by its ``Content-Encoding``, never past the body limit, never on the
event loop.

Found by the second probe round: aiohttp decoded a compressed body as it arrived, on the event
loop and without a cap on the output, so 128 KiB of zstd that unpacks to 4 GiB of zeros froze
every route and WebSocket for 11.7 s, and a request refused before its body was read (401) still
froze it for half a second. The daemon's server is therefore built with aiohttp's
``auto_decompress`` off (``transport/app.py``): a body arrives as the bytes that were sent, and
:func:`read_body` decodes it on :data:`DECODERS` (a small thread pool; zlib, Brotli and zstd
release the GIL while they work) in steps of :data:`STEP_BYTES` of output (Brotli's may be up to
twice that), stopping with 413 as soon as the output passes ``max_body_bytes``. A body a route
never reads is never decoded.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

__all__ = ["DECODERS", "STEP_BYTES", "BodyError", "decode_body", "read_body"]

STEP_BYTES = 1 << 20  # output produced per step: the most a decoder makes past the limit
# A few bodies decode at once; more wait their turn here, not on the event loop.
DECODERS = ThreadPoolExecutor(2, thread_name_prefix="body-decode")


class BodyError(Exception):
    """A body the daemon does not take: ``status`` is 413 (too large once decoded) or 400
    (not valid data for its encoding); the message says which and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _zlib_steps(raw: bytes, wbits: int) -> Iterator[bytes]:
    data = raw
    while data:
        decoder = zlib.decompressobj(wbits)
        while True:
            out = decoder.decompress(data, STEP_BYTES)
            if out:
                yield out
            data = decoder.unconsumed_tail
            if decoder.eof or (not data and not out):
                break
        yield decoder.flush()  # at most a window's worth: all the input was taken
        if not decoder.eof:
            raise ValueError("the compressed data ends before its stream does")
        data = decoder.unused_data.lstrip(b"\0") if wbits & 16 else b""  # gzip: more members


def _deflate_steps(raw: bytes) -> Iterator[bytes]:
    # "deflate" is zlib-wrapped by the RFC, raw deflate from some clients: try both, as aiohttp does
    wbits = zlib.MAX_WBITS if raw[:1] and (raw[0] & 0x0F) == 8 and (
        int.from_bytes(raw[:2], "big") % 31 == 0) else -zlib.MAX_WBITS
    yield from _zlib_steps(raw, wbits)


def _brotli_steps(raw: bytes) -> Iterator[bytes]:
    import brotli

    decoder = brotli.Decompressor()
    out = decoder.process(raw, output_buffer_limit=STEP_BYTES)
    while True:
        if out:
            yield out
        if decoder.can_accept_more_data():
            break
        out = decoder.process(b"", output_buffer_limit=STEP_BYTES)
    if not decoder.is_finished():
        raise ValueError("the brotli stream ends before it is finished")


def _zstd_steps(raw: bytes) -> Iterator[bytes]:
    try:  # the standard library's from Python 3.14, the backport before it
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef,unused-ignore]

    data = raw
    while data:
        decoder = zstd.ZstdDecompressor()
        out = decoder.decompress(data, max_length=STEP_BYTES)
        while True:
            if out:
                yield out
            if decoder.eof or decoder.needs_input:
                break
            out = decoder.decompress(b"", max_length=STEP_BYTES)
        if not decoder.eof:
            raise ValueError("the zstd frame ends before it is finished")
        data = decoder.unused_data  # concatenated frames are one stream


_STEPS: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "gzip": lambda raw: _zlib_steps(raw, 16 + zlib.MAX_WBITS),
    "x-gzip": lambda raw: _zlib_steps(raw, 16 + zlib.MAX_WBITS),
    "deflate": _deflate_steps,
    "br": _brotli_steps,
    "zstd": _zstd_steps,
}


def decode_body(encoding: str, raw: bytes, limit: int) -> bytes:
    """``raw`` decoded; :class:`BodyError` 413 as soon as more than ``limit`` bytes come out
    (the decoder is dropped there, having made at most :data:`STEP_BYTES` more), 400 for data
    that is not what its encoding says."""
    steps = _STEPS.get(encoding)
    if steps is None or not raw:  # an empty body is empty in every encoding
        return raw
    out = bytearray()
    try:
        for piece in steps(raw):
            out += piece
            if len(out) > limit:
                raise BodyError(413, f"request body too large once decoded (more than {limit} "
                                     f"bytes from {len(raw)} bytes of {encoding}; the limit "
                                     f"is {limit})")
    except BodyError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib.error, brotli.error, zstd.ZstdError, ValueError: bad data
        raise BodyError(400, f"request body could not be read: it is not valid {encoding} data: "
                             f"{str(exc)[:200] or type(exc).__name__}") from None
    return bytes(out)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body as the route should see it: read (aiohttp refuses more than its
    ``client_max_size`` of what was sent with 413), then decoded off the loop."""
    raw = await request.read()
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    return await asyncio.get_running_loop().run_in_executor(DECODERS, decode_body, encoding, raw,
                                                            limit)
