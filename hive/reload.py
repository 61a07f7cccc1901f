"""SIGHUP: read the configuration again and apply what can change while the daemon runs.

What changes live, and how:

- ``[log] level`` and ``access``: at once;
- ``[server]`` limits and lists (``allowed_origins``, ``allowed_hosts``, ``relay_tools``,
  ``max_clients``, ``shutdown_timeout_s``): for every request from now on; and
  ``max_ws_message_bytes``, ``ping_interval_s``, ``idle_timeout_s`` for WebSockets opened from
  now on (an open one keeps the limits it was opened with);
- ``[actors.gpu_layout.params]`` (the physics): sent to the running layout, no restart;
- any other key of an ``[actors.<name>]`` section (``pool_size`` of ``mcp``, say): that actor
  is restarted with its new settings (OTP's change of a child spec); the others keep running;
  a changed restart policy alone applies from the actor's next start.

What needs the daemon restarted: ``host``, ``port``, ``state_dir``, the tokens,
``max_body_bytes``, ``header_timeout_s``, ``[log] format``, ``[supervisor]``, ``[cluster]``,
and turning an actor on or off. One log
line (``config.reloaded``) says what was applied, which actors were restarted, what waits for a
restart (every key that differs from what the daemon started with) and what failed (an actor
that did not take its settings: tried again at the next reload); a file that does not load (bad
TOML, a bad value) is logged (``config.reload_failed``) and nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from actors.messages import SetParams
from actors.schema import keys
from hive.config import ACTOR_SETTINGS, ChildPolicy, Config, ConfigError, settings_of
from hive.logs import set_level
from hive.tree import START_TIMEOUT_S, build_root, wired
from supervisor import SupervisionError, SupervisionTree
from transport.access_log import AccessLog
from transport.relay_policy import RelayPolicy
from transport.security import AccessPolicy
from transport.services import Services

__all__ = ["LIVE_SERVER_KEYS", "ReloadResult", "Reloader", "changed_keys", "replace_state"]

log = structlog.get_logger("hive.reload")

LIVE_SERVER_KEYS = frozenset({"allowed_origins", "allowed_hosts", "relay_tools", "max_clients",
                              "max_ws_message_bytes", "ping_interval_s", "idle_timeout_s",
                              "shutdown_timeout_s", "mcp_session_ttl_s"})
LIVE_LOG_KEYS = frozenset({"level", "access"})


@dataclass(frozen=True)
class ReloadResult:
    applied: tuple[str, ...]  # keys now in effect (for connections opened from now on)
    restarted: tuple[str, ...]  # actors restarted to take theirs
    needs_restart: tuple[str, ...]  # keys that differ from what runs until the daemon restarts
    failed: tuple[str, ...] = ()  # keys whose actor could not take them (tried again next time)
    error: str = ""


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted names of every key whose value differs (``actors.mcp.pool_size``)."""
    before = {name: value for name, _, value in settings_of(old)}
    after = {name: value for name, _, value in settings_of(new)}
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _restart_only(key: str, started: Config, new: Config) -> bool:
    """Whether ``key`` takes effect only at the daemon's restart."""
    section, _, rest = key.partition(".")
    if section == "log":
        return rest not in LIVE_LOG_KEYS
    if section == "server":
        return rest not in LIVE_SERVER_KEYS
    if section == "actors":  # turned on or off, or the settings of one that is off here or there
        name = rest.split(".", 1)[0]
        return not (started.actors.section(name).policy.enabled
                    and new.actors.section(name).policy.enabled)
    return True  # [supervisor], [cluster]


class Reloader:
    """Holds the configuration the daemon started from and the one last applied (tokens as the
    file and environment gave them, before they were resolved), and applies a new one."""

    def __init__(self, load: Callable[[], Config], loaded: Config, services: Services,
                 client_limit: Callable[[int], int],
                 on_loop: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._load = load
        self.started = loaded
        self.loaded = loaded
        self._services = services
        self._client_limit = client_limit
        self._on_loop = on_loop or (lambda swap: swap())

    def reload(self) -> ReloadResult:
        """Runs on a worker thread (an actor's restart takes a while); it never raises."""
        try:
            return self._reload()
        except Exception as exc:  # noqa: BLE001 - a bug here must not wedge every later reload
            log.error("config.reload_failed", error=f"{type(exc).__name__}: {exc}",
                      hint="the daemon keeps running; what was applied before this stays")
            return ReloadResult((), (), (), (), str(exc))

    def _reload(self) -> ReloadResult:
        try:
            new = self._load()
        except (ConfigError, ValueError, OSError) as exc:
            log.error("config.reload_failed", error=str(exc),
                      hint="the daemon keeps running on the settings it had")
            return ReloadResult((), (), (), (), str(exc))
        waiting = [k for k in changed_keys(self.started, new) if _restart_only(k, self.started, new)]
        changed = [k for k in changed_keys(self.loaded, new)
                   if not _restart_only(k, self.started, new)]
        applied = [k for k in changed if not k.startswith("actors.")]
        self._apply_front(new, applied)
        restarted: list[str] = []
        failed: list[str] = []
        kept = {}
        for name in ACTOR_SETTINGS:
            mine = [k for k in changed if k.startswith(f"actors.{name}.")]
            if not mine:
                continue
            outcome = self._apply_actor(name, new, mine)
            if outcome is None:
                failed.extend(mine)
                kept[name] = self.loaded.actors.section(name)  # tried again at the next reload
                continue
            applied.extend(mine)
            if outcome:
                restarted.append(name)
        self.loaded = dataclasses.replace(new, actors=dataclasses.replace(new.actors, **kept))
        result = ReloadResult(tuple(applied), tuple(restarted), tuple(waiting), tuple(failed))
        log.info("config.reloaded", applied=list(result.applied), restarted=list(result.restarted),
                 needs_restart=list(result.needs_restart), failed=list(result.failed),
                 hint="restart the daemon for the keys in needs_restart" if waiting else "")
        return result

    def _apply_front(self, new: Config, applied: list[str]) -> None:
        services = self._services
        live = {key.partition(".")[2] for key in applied if key.startswith("server.")}
        swaps: list[Callable[[], None]] = []
        if live:
            changes = {k: getattr(new.server, k) for k in live}
            if "max_clients" in changes:
                changes["max_clients"] = self._client_limit(changes["max_clients"])
            server = dataclasses.replace(services.server, **changes)
            access = AccessPolicy(server.api_token, server.host, server.allowed_origins,
                                  server.allowed_hosts)
            relay = RelayPolicy.of(server.relay_tools)

            def swap() -> None:  # on the event loop: no request sees half of it
                services.server, services.access, services.relay_policy = server, access, relay

            swaps.append(swap)
        if "log.level" in applied:
            set_level(new.log.level)
        if "log.access" in applied:
            AccessLog.enabled_now = new.log.access
        for swap in swaps:
            self._on_loop(swap)

    def _apply_actor(self, name: str, new: Config, changed: list[str]) -> bool | None:
        """Respec the actor; restart it unless only its physics or its policy changed. True
        when it was restarted, False when applied without a restart, None when it failed."""
        tree: SupervisionTree = self._services.tree
        running = replace_state(new, self._services)
        settings = wired(running).get(name)
        spec = next((c for c in build_root(running).children if c.name == name), None)
        if settings is None or spec is None or not self._services.has(name):
            return False  # off here or there: _restart_only() listed its keys already
        path = f"{tree.root_path}/{name}"
        try:
            tree.replace_spec(path, spec)
            self._services.actor_settings = {**self._services.actor_settings, name: settings}
            policy = {k.name for k in keys(ChildPolicy)}
            params_only = all(k.startswith(f"actors.{name}.params.") for k in changed)
            policy_only = all(k.split(".")[2] in policy for k in changed)
            if name == "gpu_layout" and params_only:
                fields = [k.rsplit(".", 1)[1] for k in changed]
                tree.address(path).tell(SetParams({f: getattr(settings.params, f) for f in fields}))
                return False
            if policy_only:
                return False
            tree.control("restart", path, timeout=START_TIMEOUT_S.get(name, 30.0) + 30.0)
            return True
        except (SupervisionError, TimeoutError, ValueError) as exc:
            log.warning("config.reload_actor_failed", actor=name, error=str(exc))
            return None


def replace_state(new: Config, services: Services) -> Config:
    """``new`` with the running daemon's state folder and tokens (those need a restart)."""
    server = dataclasses.replace(new.server, state_dir=services.server.state_dir,
                                 api_token=services.server.api_token,
                                 admin_token=services.server.admin_token)
    return dataclasses.replace(new, server=server)
