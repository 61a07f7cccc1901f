"""Who may change what: the Host and Origin rules, the API token, JSON-only changes.

Loopback is no security boundary against a browser: any web page can send a "simple" POST to
127.0.0.1, and DNS rebinding can put an attacker's name on a loopback address. So, on every
route, HTTP and WebSocket alike:

1. ``Host`` must be one of the daemon's own names: a loopback address or ``localhost``, the
   bind address, any address literal when bound to every address (a rebinding attack needs a
   DNS name), or ``[server] allowed_hosts``; else 403.
2. A request that carries ``Origin`` (a browser's) must come from an allowed origin: by default
   this daemon's own, scheme, host and port (loopback names stand for each other), or one of
   ``[server] allowed_origins``; else 403.
3. When an API token is set, a change (any method but GET, HEAD, OPTIONS, outside ``/admin``, which has
   its own token) needs it, as ``Authorization: Bearer <token>`` or ``?token=<token>``; else
   401. WebSockets check it per message that changes state (see :func:`ws_authorized`).
4. A change with a body must say ``Content-Type: application/json``; else 415. A browser
   cannot send that cross-site without a CORS preflight, which this daemon never grants.
   (A change without a body, such as ``DELETE``, is no "simple" request a page can send
   cross-site at all, or is stopped by rule 2.)

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from aiohttp import web

__all__ = [
    "LOOPBACK_NAMES",
    "SAFE_METHODS",
    "WILDCARD_BINDS",
    "AccessPolicy",
    "Handler",
    "Refusal",
    "exposure_problem",
    "is_loopback_host",
    "is_origin",
    "request_token",
    "security_middleware",
    "tokens_match",
]


log = structlog.get_logger("transport.security")

# Everything else is a change (POST, PUT, PATCH, DELETE, and any method a route may add).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
LOOPBACK_NAMES = frozenset({"localhost"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Refusal = Callable[[int, str, str], web.StreamResponse]


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address literal (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def is_origin(text: str) -> bool:
    """``scheme://host[:port]`` with an http(s) scheme: what an allow-list entry must be."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/") \
        and not parts.query and not parts.fragment and parts.username is None


def exposure_problem(host: str, api_token: str) -> str | None:
    """Why listening on ``host`` without an API token is refused (None when it is fine)."""
    if is_loopback_host(host) or api_token:
        return None
    return (f"listening on {host or 'every address'} reaches beyond this machine, so changes "
            f"need an API token: set $HIVE_API_TOKEN, [server] api_token or --api-token-file "
            f"FILE (or listen on 127.0.0.1)")


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token matches nothing."""
    if not expected or given is None:
        return False
    try:
        raw = given.strip().encode("utf-8", "surrogateescape")  # header bytes as they came
    except UnicodeError:
        return False
    return hmac.compare_digest(raw, expected.encode())


def request_token(request: web.Request) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, else the ``token`` query."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value
    return request.query.get("token")


@dataclass(frozen=True)
class AccessPolicy:
    """The rules above, for one daemon. ``bind_host`` is the address it listens on."""

    api_token: str = ""
    bind_host: str = "127.0.0.1"
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:  # HTTP/1.0 without Host: not a browser
            return True
        if any(c in host_header for c in "@/\\?#"):
            return False
        try:
            name = urlsplit(f"//{host_header}").hostname
        except ValueError:
            return False
        if not name:
            return False
        own = {self.bind_host.lower().strip("[]"), *(h.lower() for h in self.allowed_hosts)}
        if is_loopback_host(name) or name.strip("[]") in own:
            return True
        # Bound to every address, the daemon answers to each of this machine's addresses; an
        # address literal cannot be rebound by DNS, so any literal is one of its own names.
        return self.bind_host in WILDCARD_BINDS and _is_ip_literal(name)

    def origin_allowed(self, origin: str, host_header: str | None, own_port: int | None) -> bool:
        """Scheme, host and port: the daemon's own origin, or one on the allow-list."""
        if not is_origin(origin):  # "null" (sandboxed frames, data: pages), "*", garbage
            return False
        if self.allowed_origins:
            return _normal_origin(origin) in {_normal_origin(a) for a in self.allowed_origins}
        try:
            parts = urlsplit(origin)
            origin_host, origin_port = parts.hostname, parts.port
        except ValueError:  # "http://[::1", a port past 65535, ...
            return False
        if parts.scheme != "http" or not origin_host:
            return False
        if (origin_port or 80) != own_port:
            return False
        try:
            request_host = urlsplit(f"//{host_header}").hostname if host_header else None
        except ValueError:
            return False
        if request_host is not None and origin_host == request_host:
            return True
        return is_loopback_host(origin_host) and (request_host is None
                                                  or is_loopback_host(request_host))

    def token_required(self, request: web.Request) -> bool:
        return bool(self.api_token) and request.method not in SAFE_METHODS and not (
            request.path == "/admin" or request.path.startswith("/admin/"))

    def authorized(self, request: web.Request) -> bool:
        """True when no API token is set, or the request carries it."""
        return not self.api_token or tokens_match(request_token(request), self.api_token)


def _normal_origin(origin: str) -> str:
    try:
        parts = urlsplit(origin.strip().rstrip("/"))
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
    except ValueError:
        return "invalid:"


def _own_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def _has_body(request: web.Request) -> bool:
    return request.body_exists or request.headers.get("Transfer-Encoding") is not None


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def security_middleware(policy: Callable[[web.Request], AccessPolicy], refuse: Refusal,
                        count: Callable[[str], None]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The rules of this module as aiohttp middleware. ``refuse(status, message, reason)``
    builds the answer; ``count(reason)`` records each refusal."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        rules = policy(request)
        host = request.headers.get("Host")
        if not rules.host_allowed(host):
            count("host")
            log.warning("http.host_refused", path=request.path, host=(host or "")[:100])
            return refuse(403, f"Host {host!r} is not a name of this daemon (a guard against DNS "
                               f"rebinding); list it in [server] allowed_hosts", "host")
        origin = request.headers.get("Origin")
        if origin is not None and not rules.origin_allowed(origin, host, _own_port(request)):
            count("origin")
            log.warning("http.origin_refused", path=request.path, origin=origin[:100])
            return refuse(403, f"origin {origin[:100]!r} not allowed (scheme, host and port must "
                               f"be this daemon's own, or in [server] allowed_origins)", "origin")
        if rules.token_required(request) and not rules.authorized(request):
            count("token")
            response = refuse(401, "this daemon has an API token: send it as 'Authorization: "
                                   "Bearer <token>' (or ?token=)", "token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="hive-supervisor"'
            return response
        if request.method not in SAFE_METHODS and _has_body(request):
            content_type = request.headers.get("Content-Type")
            if content_type is None or not _is_json(content_type):
                count("content_type")
                return refuse(415, "changes take 'Content-Type: application/json' only, got "
                                   f"{(content_type or 'none')[:60]!r}", "content_type")
        return await handler(request)

    return guard
