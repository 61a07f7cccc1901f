"""Run the daemon: start the tree, serve the app, and shut both down cleanly.

Shutdown order on SIGTERM/SIGINT: stop accepting connections, close WebSockets with 1001,
stop the actors in reverse start order, exit 0. If the root supervisor gives up (its restart
intensity exceeded), the same happens and the process exits 1 with the reason logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from actors.messages import Subscribe
from hive.config import Config, replace_server
from hive.open_files import RESERVED_FDS, raise_open_files_limit
from hive.reload import Reloader
from hive.state_lock import StateLocked, lock_state
from hive.systemd import Notifier
from hive.tree import build_root, wired
from hive.version import version
from supervisor import Address, ChildUnavailable, ExitReason, SupervisionError, SupervisionTree
from transport.access_log import AccessLog
from transport.app import build_app
from transport.fanout import FrameHub
from transport.metrics import Metrics
from transport.relay_policy import RelayPolicy, risky_tools
from transport.security import AccessPolicy, exposure_problem, is_loopback_host
from transport.services import SERVICES, Services
from transport.site import CappedSite

__all__ = ["EXIT_OK", "EXIT_ROOT_FAILED", "assemble", "serve"]


log = structlog.get_logger("hive")

EXIT_OK = 0
EXIT_ROOT_FAILED = 1
EXIT_CONFIG = 2


async def serve(config: Config, reload: Callable[[], Config] | None = None,
                loaded: Config | None = None) -> int:
    """Run until SIGTERM/SIGINT or the root gives up. ``config.server`` carries both tokens
    (resolved by :mod:`hive.tokens`); ``reload`` reads the configuration again on SIGHUP, and
    ``loaded`` is the configuration it read at start (tokens as the sources gave them)."""
    loop = asyncio.get_running_loop()
    # SIGHUP's default is to end the process: until the reload handler is in place (the layout
    # may compile for a minute first), one is logged and otherwise ignored
    loop.add_signal_handler(signal.SIGHUP, log.info, "config.reload_skipped_while_starting")
    problem = exposure_problem(config.server.host, config.server.api_token)
    if problem is not None:
        log.error("config.exposed_without_token", host=config.server.host)
        print(f"hive-supervisor: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if config.server.allowed_hosts and not config.server.api_token:
        log.warning("daemon.names_without_token", hosts=list(config.server.allowed_hosts),
                    hint="requests for these names (a reverse proxy?) change things without a "
                         "token: set an API token")
    config, max_connections, client_limit = _fit_open_files(config)
    try:
        lock = lock_state(config.server.state_dir)
    except (StateLocked, OSError) as exc:
        log.error("daemon.state_locked", error=str(exc))
        print(f"hive-supervisor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        reloader = None
        if reload is not None:
            reloader = lambda services: Reloader(  # noqa: E731 - made once services exist
                reload, loaded or config, services, client_limit, _on_loop(loop))
        return await _run(config, loop, max_connections, reloader)
    finally:
        os.close(lock)


def _fit_open_files(config: Config) -> tuple[Config, int, Callable[[int], int]]:
    """Raise the open-file limit, and keep ``max_clients`` within what it leaves (said at start);
    also the most connections the listening socket takes (half the reserve stays free), and the
    rule that fits a ``max_clients`` a reload asks for."""
    limits = raise_open_files_limit()
    wanted = config.server.max_clients
    clients = limits.client_limit(wanted)
    log.info("daemon.open_files", soft=limits.soft, hard=limits.hard, raised_from=limits.raised_from,
             max_clients=clients, reserved=RESERVED_FDS)
    if clients < wanted:
        log.warning("daemon.clients_limited", max_clients=clients, configured=wanted,
                    open_files=limits.soft,
                    hint=f"the open-file limit leaves room for {clients} WebSocket clients after "
                         f"{RESERVED_FDS} kept for the daemon; the rest are refused (1013). Raise "
                         f"the hard limit (LimitNOFILE= in systemd, ulimit -Hn) for more")
        config = replace_server(config, max_clients=clients)
    return config, max(clients, limits.soft - RESERVED_FDS // 2), limits.client_limit


async def _run(config: Config, loop: asyncio.AbstractEventLoop, max_connections: int,
               reloader: Callable[[Services], Reloader] | None) -> int:
    notifier = Notifier()
    tree = SupervisionTree(build_root(config))
    stop = asyncio.Event()
    exit_code = EXIT_OK

    def root_failed(reason: ExitReason) -> None:
        nonlocal exit_code
        exit_code = EXIT_ROOT_FAILED
        loop.call_soon_threadsafe(stop.set)

    tree.on_failure(root_failed)
    started = time.monotonic()
    try:
        await loop.run_in_executor(None, tree.start)
    except SupervisionError as exc:  # a child that cannot start (e.g. a setting only it checks)
        log.error("daemon.start_failed", reason=str(exc))
        print(f"hive-supervisor: could not start: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, tree.stop, config.server.shutdown_timeout_s)
        return EXIT_ROOT_FAILED
    app = assemble(tree, config, loop)
    AccessLog.enabled_now = config.log.access
    runner = web.AppRunner(app, handle_signals=False, access_log_class=AccessLog,
                           access_log=logging.getLogger("transport.access"),
                           shutdown_timeout=config.server.shutdown_timeout_s / 2)
    await runner.setup()
    metrics = app[SERVICES].metrics
    site = CappedSite(runner, config.server.host, config.server.port, max_connections=max_connections,
                      header_timeout_s=config.server.header_timeout_s,
                      on_reset=metrics.connections_reset.inc)
    try:
        await site.start()
    except OSError as exc:
        log.error("daemon.bind_failed", host=config.server.host, port=config.server.port,
                  error=str(exc))
        print(f"hive-supervisor: cannot listen on {config.server.host}:{config.server.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        await runner.cleanup()
        await loop.run_in_executor(None, tree.stop, config.server.shutdown_timeout_s)
        return EXIT_CONFIG
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = app[SERVICES]
    reloads = _Reloads(reloader(services) if reloader else None, services, notifier)
    loop.add_signal_handler(signal.SIGHUP, reloads)
    port = _bound_port(runner, config.server.port)
    if services.has("cluster"):  # where a leader runs the requests followers forward
        from actors.cluster.messages import ServingAt

        with contextlib.suppress(ChildUnavailable):
            services.address("cluster").tell(ServingAt(
                f"http://{_loopback(config.server.host)}:{port}", config.server.api_token))
    risky = risky_tools(config.server.relay_tools)
    if risky:
        log.warning("relay.risky_tools_allowed", tools=risky,
                    hint="[server] relay_tools lets every relay client call these")
    if not is_loopback_host(config.server.host):
        log.warning("daemon.exposed", host=config.server.host,
                    hint="reachable beyond this machine: changes need the API token; put TLS "
                         "in front (docs/security.md)")
    log.info("daemon.ready", url=f"http://{config.server.host}:{port}", port=port,
             actors=tree.paths(), startup_s=round(time.monotonic() - started, 3),
             systemd=notifier.enabled)
    notifier.ready(f"serving on {config.server.host}:{port}")
    notifier.start_watchdog(lambda: tree.failure is None)
    await stop.wait()
    if exit_code == EXIT_ROOT_FAILED:
        log.error("daemon.root_failed", reason=tree.failure.message if tree.failure else None)
    log.info("daemon.stopping")
    services.stopping = True
    notifier.stopping()
    await notifier.stop_watchdog()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a second one waits its turn
        loop.add_signal_handler(sig, log.info, "daemon.already_stopping")
    timeout = services.server.shutdown_timeout_s  # a reload may have changed it
    await reloads.settle(timeout / 2)  # an actor it restarts must not race the tree's stop
    await site.stop()  # stop accepting
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), timeout / 2)
    await loop.run_in_executor(None, tree.stop, timeout / 2)
    log.info("daemon.stopped", exit_code=exit_code)
    return exit_code


class _Reloads:
    """SIGHUP: one reload at a time, on a worker thread (restarting an actor takes a while); a
    SIGHUP during one runs another after it, with the file as it is then. None once shutdown
    has begun; shutdown waits for the one under way (bounded) before it stops the tree."""

    def __init__(self, reloader: Reloader | None, services: Services, notifier: Notifier) -> None:
        self._reloader = reloader
        self._services = services
        self._notifier = notifier
        self._last: asyncio.Future[Any] | None = None

    def __call__(self) -> None:
        if self._services.stopping:
            log.info("config.reload_skipped", reason="shutting down")
            return
        if self._reloader is None:
            log.info("config.reload_skipped", reason="started without --config: no file to read",
                     hint="start with --config FILE to change settings with SIGHUP")
            return
        self._last = asyncio.ensure_future(self._one(self._last, self._reloader))

    async def _one(self, previous: asyncio.Future[Any] | None, reloader: Reloader) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        if self._services.stopping:
            return
        self._notifier.reloading("reloading the configuration")
        try:
            await asyncio.get_running_loop().run_in_executor(None, reloader.reload)
        finally:
            if not self._services.stopping:
                self._notifier.ready("configuration reloaded")

    async def settle(self, timeout: float) -> None:
        if self._last is not None:
            await asyncio.wait([self._last], timeout=timeout)


def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], None]:
    """Run a function on the event loop from a worker thread, and wait for it."""
    def run(fn: Callable[[], None]) -> None:
        asyncio.run_coroutine_threadsafe(_call(fn), loop).result(30)
    return run


async def _call(fn: Callable[[], None]) -> None:
    fn()


def assemble(
    tree: SupervisionTree, config: Config, loop: asyncio.AbstractEventLoop
) -> web.Application:
    """The web app over a started tree: services, the frame hub fed by the layout, routes."""
    metrics = Metrics(tree, version())
    hub = FrameHub(on_sent=metrics.frames, on_dropped=metrics.frames_dropped.inc)
    server = config.server
    access = AccessPolicy(server.api_token, server.host, server.allowed_origins,
                          server.allowed_hosts)
    services = Services(tree, server, hub, metrics, wired(config), access=access,
                        relay_policy=RelayPolicy.of(server.relay_tools))
    publish = hub.threadsafe_publisher(loop)
    if services.has("cluster"):
        # in a cluster the hub shows what the cluster actor picks: our layout while we lead,
        # the leader's frames while we follow
        cluster = services.address("cluster")
        cluster.tell(Subscribe("wss", publish))
        if services.has("gpu_layout"):
            from actors.cluster.actor import frames_to  # the cluster extra: only when configured

            services.address("gpu_layout").tell(Subscribe("cluster", frames_to(cluster)))
        if services.has("hive_mind"):  # the leader's swarm table, row by row, for the followers
            from actors.hive_mind.messages import WatchTable

            services.address("hive_mind").tell(WatchTable("cluster", _tell_cluster(cluster)))
    elif services.has("gpu_layout"):
        services.address("gpu_layout").tell(Subscribe("wss", publish))
    return build_app(services)


def _tell_cluster(cluster: Address) -> Callable[[Any], None]:
    """Messages for the cluster actor from another actor's thread (lost while it restarts)."""
    def tell(message: Any) -> None:
        with contextlib.suppress(ChildUnavailable):
            cluster.tell(message)

    return tell


def _loopback(host: str) -> str:
    """How this process reaches its own server: the host it listens on, or loopback for a
    wildcard address."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return fallback
