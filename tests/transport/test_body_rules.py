"""Body rules on a real server, before a byte of the body is read.

Found by an outside probe: a body over the limit was read before it was refused, an unknown
``Content-Encoding`` was treated as none, and a broken ``br`` body got aiohttp's plain-text 400.
"""

from __future__ import annotations

import asyncio
import time

from tests.conftest import Daemon, raw_http, status_and_json


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_arrives(daemon: Daemon) -> None:
    announced = 100_000_000  # over the 64 MiB default; the client sends one byte of it
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.server.port)
    try:
        writer.write(b"PUT /api/graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{" % announced)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # no more body sent
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        response = head + await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    status, body = status_and_json(response)
    assert status == 413 and f"{announced} bytes" in body["error"]
    assert b"Connection: close" in head
    assert time.monotonic() - started < 5


async def test_an_unknown_content_encoding_is_415_not_read_as_plain(daemon: Daemon) -> None:
    body = b'{"nodes": []}'
    response = await raw_http(daemon, b"PUT /api/graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: foo\r\n"
                              b"Content-Type: application/json\r\nConnection: close\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    status, answer = status_and_json(response)
    assert status == 415 and "'foo' is not supported" in answer["error"]
    assert b"Accept-Encoding: gzip, deflate, br, zstd" in response


async def test_broken_br_and_zstd_bodies_are_json_400s_and_good_ones_load(daemon: Daemon) -> None:
    import brotli
    from backports import zstd

    for encoding, good in ((b"br", brotli.compress(b'{"nodes": [{"id": 1}]}')),
                           (b"zstd", zstd.compress(b'{"nodes": [{"id": 1}]}'))):
        for payload, expected in ((b"garbage!!", 400), (good, 200)):
            response = await raw_http(
                daemon, b"PUT /api/graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: %s\r\n"
                b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                % (encoding, len(payload), payload))
            status, answer = status_and_json(response)  # JSON either way, never text/plain
            assert status == expected, (encoding, answer)
