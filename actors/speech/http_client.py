"""Blocking HTTP POST for the speech peers, with failures sorted into transient or not.

The speech engines are called from worker threads (the speech actor, a stream's thread), so a
plain ``urllib`` request is the right tool: no event loop, no new dependency. Every failure
becomes a :class:`ProviderError` whose ``transient`` flag drives the retry policy in
``resilient.py``: connection errors, time-outs, 408/425/429 and 5xx may pass; other answers
(401, 404, 422, ...) will not change by asking again.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from actors.speech.errors import ProviderError

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TRANSIENT_STATUS",
    "FilePart",
    "join_url",
    "multipart",
    "post",
    "post_json",
]


TRANSIENT_STATUS = frozenset({408, 425, 429})
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a minute of 48 kHz WAV is 5.5 MB; this bounds a bad peer
_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class FilePart:
    """One file field of a multipart form."""

    field: str
    filename: str
    content_type: str
    data: bytes


def join_url(base_url: str, path: str) -> str:
    """``base_url`` plus ``path``, tolerating a trailing slash or a base that ends in ``/v1``."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path


def multipart(fields: Mapping[str, str], files: tuple[FilePart, ...]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type header."""
    boundary = f"hive-{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in fields.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n").encode()
    for part in files:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{part.field}"; '
                f'filename="{part.filename}"\r\nContent-Type: {part.content_type}\r\n\r\n').encode()
        out += part.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def post(provider: str, url: str, body: bytes, content_type: str, *, api_key: str | None,
         timeout_s: float) -> tuple[bytes, str]:
    """POST once; the response body and its Content-Type, or :class:`ProviderError`.

    ``timeout_s`` bounds connecting and each wait for data, so a peer that accepts and then
    never answers fails after ``timeout_s`` instead of holding the thread.
    """
    headers = {"Content-Type": content_type, "Accept": "*/*", "User-Agent": "hive-supervisor-speech"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = response.read(MAX_RESPONSE_BYTES + 1)
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        transient = exc.code >= 500 or exc.code in TRANSIENT_STATUS
        raise ProviderError(provider, f"HTTP {exc.code} from {url}{detail}", transient=transient,
                            status=exc.code) from exc
    except TimeoutError as exc:
        raise ProviderError(provider, f"no answer from {url} within {timeout_s:g} s", transient=True) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise ProviderError(provider, f"no answer from {url} within {timeout_s:g} s", transient=True) from exc
        raise ProviderError(provider, f"cannot reach {url}: {reason}", transient=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ProviderError(provider, f"connection to {url} failed: {type(exc).__name__}: {exc}",
                            transient=True) from exc
    if len(data) > MAX_RESPONSE_BYTES:
        raise ProviderError(provider, f"answer from {url} exceeds {MAX_RESPONSE_BYTES} bytes", transient=False)
    return data, kind


def post_json(provider: str, url: str, payload: Mapping[str, object], *, api_key: str | None,
              timeout_s: float) -> tuple[bytes, str]:
    return post(provider, url, json.dumps(payload).encode(), "application/json",
                api_key=api_key, timeout_s=timeout_s)


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(_DETAIL_CHARS).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):  # the body is a courtesy; the status says enough
        return ""
    return f": {text}" if text else ""
