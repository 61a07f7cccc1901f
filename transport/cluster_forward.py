"""In a cluster, the requests that read or change the swarm table or the knowledge graph are
the leader's: a follower forwards them over NATS (:mod:`actors.cluster.forward`) and answers
with exactly what the leader answered (status, body, ``Location``, ``Idempotent-Replayed``).

A follower holding a copy of the leader's swarm table answers ``GET /api/swarms`` from it,
from memory, as the leader does; a spawn it forwarded is in that copy before the client hears
of it (read your writes).

Applied after the security and body rules, so a follower checks the token, the Host and
Origin, and the size limit before anything leaves it. With nobody leading (an election takes
up to ``lease_ttl_s``; NATS down) a read is answered from this daemon's own copy (marked
``X-Hive-Leader: none``: it keeps serving what it has) and a change gets 503 with
``Retry-After``. A spawn or stop the leader accepts is kept in the shared state (JetStream)
before it is answered (``X-Hive-Kept: true``), so a new leader finds it; when the leader does
not answer in time, 504, saying the write may have run (retry with the same
``Idempotency-Key``). A daemon without ``[cluster]`` never runs this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from actors.cluster.forward import (
    FORWARDED_HEADERS,
    LeaderTimeout,
    Message,
    NoLeader,
    decode,
    encode,
)
from actors.cluster.messages import Flush, Forward, GetCluster
from actors.hive_mind.errors import UnknownSession
from actors.hive_mind.messages import GetSwarm
from supervisor import Address, SupervisionError
from transport.http_errors import RETRY_AFTER_S, json_error
from transport.services import SERVICES

__all__ = ["FORWARDED_PATHS", "FORWARD_TIMEOUT_S", "forward_to_leader_middleware"]

# The leader's routes: the swarm table and the knowledge graph (reads too: a follower holds
# neither).
FORWARDED_PATHS = re.compile(r"^/api/(graph|swarms(/[^/]+)?)$")
FORWARD_TIMEOUT_S = 30.0
READS = frozenset({"GET", "HEAD"})
SWARM_READS = re.compile(r"^/api/swarms(/[^/]+)?$")  # answered from a follower's copy
COPY_WAIT_S = 1.0
KEEP_TIMEOUT_S = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def forward_to_leader_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    if not FORWARDED_PATHS.match(request.path) or not services.has("cluster"):
        return await handler(request)
    cluster = services.address("cluster")
    try:
        state = await cluster.ask_async(GetCluster(), timeout=2.0)
    except SupervisionError:
        return _unavailable("this daemon's cluster link is restarting: try again")
    if state.role == "leader":  # ours to run (forwarded to us, or asked of us)
        return await _kept(request, await handler(request), cluster)
    if (request.method in READS and state.table_copied and SWARM_READS.match(request.path)
            and request.query.get("refresh") != "true"):  # a re-read of the backend: the leader's
        return await handler(request)  # from memory: our copy of the leader's table
    if state.leader is None:
        if request.method in READS:  # NATS down, or between leaders: what this daemon has
            return _own_copy(await handler(request))
        return _unavailable("no daemon leads the cluster now (an election takes up to the "
                            "lease's TTL, or NATS is unreachable): try again")
    body = await request.read()
    meta = {"method": request.method, "path": request.path_qs, "from": state.node,
            "headers": {k: request.headers[k] for k in FORWARDED_HEADERS if k in request.headers}}
    try:
        future = await cluster.ask_async(Forward(encode(Message(meta, body)), FORWARD_TIMEOUT_S))
        raw = await asyncio.wait_for(asyncio.wrap_future(future), FORWARD_TIMEOUT_S + 1.0)
    except NoLeader as exc:
        if request.method in READS:
            return _own_copy(await handler(request))
        return _unavailable(f"{exc}: try again")
    except (LeaderTimeout, TimeoutError):
        return json_error(504, f"the leader ({state.leader}) did not answer within "
                               f"{FORWARD_TIMEOUT_S:g} s; a change may have been made: retry with "
                               f"the same Idempotency-Key, or read it back")
    except SupervisionError:
        return _unavailable("this daemon's cluster link is restarting: try again")
    answer = decode(raw)
    if state.table_copied and request.method == "POST" and request.path == "/api/swarms":
        await _copied(services.address("hive_mind"), answer)
    response = web.Response(status=int(answer.meta["status"]), body=answer.body)  # type: ignore[call-overload]
    for name, value in dict(answer.meta.get("headers") or {}).items():  # type: ignore[call-overload]
        response.headers[str(name)] = str(value)
    response.headers["X-Hive-Leader"] = state.leader
    return response


async def _kept(request: web.Request, response: web.StreamResponse,
                cluster: Address) -> web.StreamResponse:
    """A spawn or stop the leader accepted is in the cluster's shared state before it is
    answered (a new leader finds the swarm it acknowledged). Said in ``X-Hive-Kept`` either
    way. A graph is kept once the layout saved it (within about 0.1 s), not waited for."""
    if (request.method in READS or not 200 <= response.status < 300
            or not SWARM_READS.match(request.path)):  # a graph: kept within 0.1 s of its save
        return response
    kept = False
    with contextlib.suppress(Exception):  # not kept: the answer stands, the header says so
        future = await cluster.ask_async(Flush(), timeout=2.0)
        if future is not None:
            kept = bool(await asyncio.wait_for(asyncio.wrap_future(future), KEEP_TIMEOUT_S))
    response.headers["X-Hive-Kept"] = "true" if kept else "false"
    return response


async def _copied(hive: Address, answer: Message) -> None:
    """Read your writes: a swarm the leader accepted is in our copy of its table before the
    client hears of it (its row comes over NATS ahead of the answer; at most COPY_WAIT_S)."""
    try:
        swarm_id = str(json.loads(answer.body)["id"])
    except (ValueError, KeyError, TypeError):
        return
    deadline = asyncio.get_running_loop().time() + COPY_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        try:
            await hive.ask_async(GetSwarm(swarm_id), timeout=1.0)
            return
        except UnknownSession:
            await asyncio.sleep(0.005)
        except SupervisionError:
            return


def _own_copy(response: web.StreamResponse) -> web.StreamResponse:
    """A read answered by this daemon itself while nobody leads: possibly behind the cluster."""
    response.headers["X-Hive-Leader"] = "none (this daemon's own copy)"
    return response


def _unavailable(message: str) -> web.Response:
    response = json_error(503, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
