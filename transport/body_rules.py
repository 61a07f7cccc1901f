"""Rules for a request body, applied before a byte of it is read.

Found by an outside probe: a body over the size limit was read before it was refused (a client
announcing 100 MB held the connection until it sent them), and an unknown ``Content-Encoding``
was treated as none, so a compressed body reached the JSON parser as garbage. The daemon decodes
gzip, deflate, br and zstd (:mod:`transport.body_decoding`, when a route reads the body); anything
else is refused with 415, and a declared length over ``max_body_bytes`` with 413 at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from transport.http_errors import json_error
from transport.services import SERVICES

__all__ = ["CONTENT_ENCODINGS", "body_rules_middleware"]

CONTENT_ENCODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate", "br", "zstd"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def body_rules_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SERVICES].server.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        response = json_error(413, f"request body too large ({length} bytes; the limit is {limit})")
        response.force_close()  # close rather than read (and throw away) what was announced
        return response
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding and encoding not in CONTENT_ENCODINGS:
        response = json_error(415, f"Content-Encoding {encoding[:40]!r} is not supported "
                                   f"(send identity, gzip, deflate, br or zstd)")
        response.headers["Accept-Encoding"] = "gzip, deflate, br, zstd"
        return response
    return await handler(request)
