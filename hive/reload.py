"""SIGHUP: read the configuration again and apply what can change while the daemon runs.

What changes live, and how:

- ``[log] level`` and ``access``: at once;
- ``[server]`` limits and lists (``allowed_origins``, ``allowed_hosts``, ``relay_tools``,
  ``max_clients``, ``max_ws_message_bytes``, ``ping_interval_s``, ``idle_timeout_s``,
  ``shutdown_timeout_s``): for every request and connection from now on;
- ``[actors.gpu_layout.params]`` (the physics): sent to the running layout, no restart;
- any other key of an ``[actors.<name>]`` section (``pool_size`` of ``mcp``, say): that actor
  is restarted with its new settings (OTP's change of a child spec); the others keep running;
  a changed restart policy alone applies from the actor's next start.

What needs the daemon restarted: ``host``, ``port``, ``state_dir``, the tokens,
``max_body_bytes``, ``[log] format``, ``[supervisor]``, and turning an actor on or off. One log
line (``config.reloaded``) says what was applied and what waits for a restart; a file that does
not load (bad TOML, a bad value) is logged (``config.reload_failed``) and nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from actors.messages import SetParams
from actors.schema import keys
from hive.config import ACTOR_SETTINGS, ChildPolicy, Config, ConfigError
from hive.logs import set_level
from hive.tree import build_root, wired
from supervisor import SupervisionError, SupervisionTree
from transport.access_log import AccessLog
from transport.relay_policy import RelayPolicy
from transport.security import AccessPolicy
from transport.services import Services

__all__ = ["LIVE_SERVER_KEYS", "ReloadResult", "Reloader", "changed_keys", "replace_state"]

log = structlog.get_logger("hive.reload")

LIVE_SERVER_KEYS = frozenset({"allowed_origins", "allowed_hosts", "relay_tools", "max_clients",
                              "max_ws_message_bytes", "ping_interval_s", "idle_timeout_s",
                              "shutdown_timeout_s"})
LIVE_LOG_KEYS = frozenset({"level", "access"})


@dataclass(frozen=True)
class ReloadResult:
    applied: tuple[str, ...]  # keys now in effect
    restarted: tuple[str, ...]  # actors restarted to take theirs
    needs_restart: tuple[str, ...]  # keys that wait for the daemon's restart
    error: str = ""


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted names of every key whose value differs (``actors.mcp.pool_size``)."""
    before, after = _flat(old), _flat(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _flat(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, settings: Any) -> None:
        for key in keys(type(settings)):
            value = getattr(settings, key.name)
            if key.table is not None:
                walk(f"{prefix}.{key.name}", value)
            else:
                out[f"{prefix}.{key.name}"] = value

    walk("server", config.server)
    walk("log", config.log)
    walk("supervisor", config.supervisor)
    for name in ACTOR_SETTINGS:
        section = config.actors.section(name)
        walk(f"actors.{name}", section.policy)
        walk(f"actors.{name}", section.settings)
    return out


class Reloader:
    """Holds the configuration as last loaded (tokens as the file and environment gave them,
    before they were resolved) and applies a new one to the running daemon."""

    def __init__(self, load: Callable[[], Config], loaded: Config, services: Services,
                 client_limit: Callable[[int], int]) -> None:
        self._load = load
        self.loaded = loaded
        self._services = services
        self._client_limit = client_limit
        self._waiting: set[str] = set()  # changed keys that wait for a restart, said each time

    def reload(self) -> ReloadResult:
        """Runs on a worker thread (an actor's restart takes a while): it never raises."""
        try:
            new = self._load()
        except (ConfigError, ValueError, OSError) as exc:
            log.error("config.reload_failed", error=str(exc),
                      hint="the daemon keeps running on the settings it had")
            return ReloadResult((), (), tuple(sorted(self._waiting)), str(exc))
        changed = changed_keys(self.loaded, new)
        applied: list[str] = []
        restarted: list[str] = []
        for key in changed:
            section, _, rest = key.partition(".")
            if (section == "log" and rest in LIVE_LOG_KEYS) or (
                    section == "server" and rest in LIVE_SERVER_KEYS):
                applied.append(key)
            elif section != "actors" or rest.endswith(".enabled"):
                self._waiting.add(key)
        self._apply_front(new, applied)
        for name in ACTOR_SETTINGS:
            mine = [k for k in changed if k.startswith(f"actors.{name}.") and k not in self._waiting]
            if mine:
                if self._apply_actor(name, new, mine):
                    restarted.append(name)
                applied.extend(mine)
        self.loaded = new
        result = ReloadResult(tuple(applied), tuple(restarted), tuple(sorted(self._waiting)))
        log.info("config.reloaded", applied=list(result.applied), restarted=list(result.restarted),
                 needs_restart=list(result.needs_restart),
                 hint="restart the daemon for the keys in needs_restart" if self._waiting else "")
        return result

    def _apply_front(self, new: Config, applied: list[str]) -> None:
        services = self._services
        live = {key.partition(".")[2] for key in applied if key.startswith("server.")}
        if live:
            changes = {k: getattr(new.server, k) for k in live}
            if "max_clients" in changes:
                changes["max_clients"] = self._client_limit(changes["max_clients"])
            server = dataclasses.replace(services.server, **changes)
            services.server = server
            services.access = AccessPolicy(server.api_token, server.host, server.allowed_origins,
                                           server.allowed_hosts)
            services.relay_policy = RelayPolicy.of(server.relay_tools)
        if "log.level" in applied:
            set_level(new.log.level)
        if "log.access" in applied:
            AccessLog.enabled_now = new.log.access

    def _apply_actor(self, name: str, new: Config, changed: list[str]) -> bool:
        """Respec the actor; restart it unless only its physics or its policy changed. True
        when it was restarted."""
        tree: SupervisionTree = self._services.tree
        if not self._services.has(name):  # off: its settings apply if it is turned on
            return False
        path = f"{tree.root_path}/{name}"
        running = replace_state(new, self._services)
        settings = wired(running)[name]
        spec = next(c for c in build_root(running).children if c.name == name)
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
            tree.restart(path)
            return True
        except SupervisionError as exc:
            log.warning("config.reload_actor_failed", actor=name, error=str(exc))
            return False


def replace_state(new: Config, services: Services) -> Config:
    """``new`` with the running daemon's state folder and tokens (those need a restart)."""
    server = dataclasses.replace(new.server, state_dir=services.server.state_dir,
                                 api_token=services.server.api_token,
                                 admin_token=services.server.admin_token)
    return dataclasses.replace(new, server=server)
