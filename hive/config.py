"""Configuration: embedded defaults, then a TOML file, then ``HIVE_*`` environment variables,
then command-line flags. An unknown key or a bad value stops start-up with a message that names
the key (and the variable, when it came from one).

Nothing here declares a key. Each section's schema is a settings dataclass owned by the code it
configures (:mod:`actors.schema` explains the pattern): ``[server]`` is
:class:`transport.settings.ServerSettings`, ``[supervisor]`` is :class:`SupervisorSettings`,
``[log]`` is :class:`hive.logs.LogSettings`, ``[cluster]`` is
:class:`actors.cluster.settings.ClusterSettings`,
and ``[actors.<name>]`` is that actor's settings class plus the :class:`ChildPolicy` keys every
actor takes. This module only reads values and hands them to those classes.

Environment overrides are ``HIVE_<SECTION>_<KEY>``, e.g. ``HIVE_SERVER_PORT=9000``,
``HIVE_ACTORS_GPU_LAYOUT_TICK_HZ=30`` or ``HIVE_ACTORS_GPU_LAYOUT_PARAMS_REPEL_K=250`` (lists are
comma-separated).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from actors.cluster.settings import ClusterSettings
from actors.gpu_layout import LayoutSettings
from actors.health import HealthSettings
from actors.hive_mind.settings import HiveMindSettings
from actors.mcp.settings import McpSettings
from actors.schema import Key, SettingError, Settings, coerce, keys, seconds, setting
from actors.speech.settings import SpeechSettings
from hive.logs import LogSettings
from supervisor import Backoff
from transport.settings import ServerSettings

__all__ = [
    "ACTOR_SETTINGS",
    "ActorSection",
    "ActorsConfig",
    "ChildPolicy",
    "Config",
    "ConfigError",
    "SupervisorSettings",
    "check_environment",
    "effective",
    "environment_variables",
    "load_config",
    "replace_server",
    "sections",
    "settings_of",
]


S = TypeVar("S")


class ConfigError(ValueError):
    """A configuration problem, phrased for the operator."""


@dataclass(frozen=True)
class SupervisorSettings(Settings):
    """``[supervisor]``: the root supervisor (OTP's strategy and restart intensity)."""

    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    max_restarts: int = setting(3, lo=0)
    within_seconds: float = seconds(5.0, above=0)


@dataclass(frozen=True)
class ChildPolicy(Settings):
    """The keys every ``[actors.<name>]`` section takes: whether the actor runs, and how its
    supervisor restarts it (its own limit and backoff on top of the root's intensity)."""

    enabled: bool = True
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    max_restarts: int | None = setting(None, lo=0)
    within_seconds: float = seconds(60.0, above=0)
    backoff_min: float | None = seconds(None)  # both unset: restart at once; one set: the other 1 s / 60 s
    backoff_max: float | None = seconds(None)

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.backoff_min, self.backoff_max
        if lo is not None and hi is not None and lo > hi:
            raise SettingError("backoff_min", "must not exceed backoff_max")

    def backoff(self) -> Backoff | None:
        """The pause before each restart, doubling from ``backoff_min`` to ``backoff_max``
        (10 % jitter); None when neither is set."""
        if self.backoff_min is None and self.backoff_max is None:
            return None
        lo = self.backoff_min if self.backoff_min is not None else 1.0
        hi = self.backoff_max if self.backoff_max is not None else max(lo, 60.0)
        return Backoff(min_s=lo, max_s=hi, multiplier=2.0, jitter=0.1)


@dataclass(frozen=True)
class ActorSection(Generic[S]):
    """One ``[actors.<name>]`` section: the supervision policy and the actor's own settings."""

    policy: ChildPolicy
    settings: S


# The root's children in start order, each with its settings class (its section's schema).
ACTOR_SETTINGS: Mapping[str, type[Settings]] = {
    "gpu_layout": LayoutSettings,
    "mcp": McpSettings,
    "hive_mind": HiveMindSettings,
    "speech": SpeechSettings,
    "health": HealthSettings,
}


@dataclass(frozen=True)
class ActorsConfig:
    gpu_layout: ActorSection[LayoutSettings]
    mcp: ActorSection[McpSettings]
    hive_mind: ActorSection[HiveMindSettings]
    speech: ActorSection[SpeechSettings]
    health: ActorSection[HealthSettings]

    def section(self, name: str) -> ActorSection[Any]:
        section: ActorSection[Any] = getattr(self, name)
        return section


@dataclass(frozen=True)
class Config:
    server: ServerSettings
    supervisor: SupervisorSettings
    actors: ActorsConfig
    log: LogSettings = field(default_factory=LogSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


def sections() -> dict[str, type]:
    """Every section's name and schema, sub-tables included (``actors.gpu_layout.params``):
    what the documentation must cover (``tests/test_documented_settings.py`` checks it)."""
    out: dict[str, type] = {"server": ServerSettings, "supervisor": SupervisorSettings,
                            "log": LogSettings, "cluster": ClusterSettings}
    for name, cls in ACTOR_SETTINGS.items():
        out[f"actors.{name}"] = cls
        for key in keys(cls):
            if key.table is not None:
                out[f"actors.{name}.{key.name}"] = key.table
    return out


def environment_variables() -> set[str]:
    """Every ``HIVE_*`` variable the configuration reads (tables included)."""
    names: set[str] = set()
    for section, cls in sections().items():
        prefix = "HIVE_" + section.replace(".", "_").upper()
        extra = keys(ChildPolicy) if section.count(".") == 1 else []
        names.update(f"{prefix}_{key.name.upper()}" for key in [*keys(cls), *extra] if key.table is None)
    return names


def check_environment(env: Mapping[str, str], also_known: Iterable[str] = ()) -> None:
    """Refuse a ``HIVE_*`` variable nothing reads: a misspelt override would otherwise be
    ignored without a word, and the daemon run on a value its operator did not choose."""
    known = environment_variables() | set(also_known)
    for variable in sorted(env):
        if variable.startswith("HIVE_") and variable not in known:
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f" (did you mean ${close[0]}?)" if close else " (docs/configuration.md lists them)"
            raise ConfigError(f"${variable}: no setting reads this variable{hint}")


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Defaults < file < environment < ``overrides`` (command-line flags), validated."""
    env = os.environ if env is None else env
    data = _read(path) if path is not None else {}
    for key in data:
        if key not in ("server", "supervisor", "actors", "log", "cluster"):
            raise ConfigError(
                f"[{key}]: unknown section (known: server, supervisor, actors, log, cluster)")
    flags = overrides or {}
    server = _build(ServerSettings, "server", _table(data, "server", "server"), "HIVE_SERVER", env,
                    flags.get("server", {}))
    supervisor = _build(SupervisorSettings, "supervisor", _table(data, "supervisor", "supervisor"),
                        "HIVE_SUPERVISOR", env, flags.get("supervisor", {}))
    log_settings = _build(LogSettings, "log", _table(data, "log", "log"), "HIVE_LOG", env,
                          flags.get("log", {}))
    cluster = _build(ClusterSettings, "cluster", _table(data, "cluster", "cluster"),
                     "HIVE_CLUSTER", env, flags.get("cluster", {}))
    actors_data = _table(data, "actors", "actors")
    for name in actors_data:
        if name not in ACTOR_SETTINGS:
            raise ConfigError(f"[actors.{name}]: unknown actor (known: {', '.join(ACTOR_SETTINGS)})")
    built: dict[str, ActorSection[Any]] = {}
    for name, cls in ACTOR_SETTINGS.items():
        where = f"actors.{name}"
        values = dict(_table(actors_data, name, where))
        prefix = f"HIVE_ACTORS_{name.upper()}"
        policy_keys = {k.name for k in keys(ChildPolicy)}
        own = {k: v for k, v in values.items() if k not in policy_keys}
        common = {k: v for k, v in values.items() if k in policy_keys}
        policy = _build(ChildPolicy, where, common, prefix, env)
        settings = _build(cls, where, own, prefix, env, known_too=policy_keys)
        built[name] = ActorSection(policy, settings)
    return Config(server, supervisor, ActorsConfig(**built), log_settings, cluster)


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _build(cls: type[S], where: str, values: Mapping[str, Any], env_prefix: str,
           env: Mapping[str, str], flags: Mapping[str, Any] | None = None,
           known_too: set[str] | None = None) -> S:
    """One section: file values, then environment variables, then flags, each coerced by its
    key's type and rule; then the class itself checks the whole (cross-key rules)."""
    schema = {k.name: k for k in keys(cls)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        key = schema.get(name)
        if key is None:
            known = ", ".join(sorted({*schema, *(known_too or ())}))
            raise ConfigError(f"[{where}] {name}: unknown key (known keys: {known})")
        out[name] = _value(key, where, value, env_prefix, env)
    for key in schema.values():
        variable = f"{env_prefix}_{key.name.upper()}"
        if key.table is not None:
            if key.name not in out:
                out[key.name] = _value(key, where, {}, env_prefix, env)
        elif variable in env:
            out[key.name] = _coerce(key, where, env[variable], from_text=True,
                                    source=f" (from ${variable})")
    for name, value in (flags or {}).items():
        if value is not None:
            out[name] = _coerce(schema[name], where, value, from_text=False)
    try:
        return cls(**out)
    except SettingError as exc:
        raise ConfigError(f"[{where}] {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from None


def _value(key: Key, where: str, value: Any, env_prefix: str, env: Mapping[str, str]) -> Any:
    if key.table is None:
        return _coerce(key, where, value, from_text=False)
    sub = f"{where}.{key.name}"
    table = _build(key.table, sub, _table({key.name: value}, key.name, sub),
                   f"{env_prefix}_{key.name.upper()}", env)
    return table


def _coerce(key: Key, where: str, value: Any, *, from_text: bool, source: str = "") -> Any:
    try:
        return coerce(key, value, from_text=from_text)
    except SettingError as exc:
        raise ConfigError(f"[{where}] {key.name}{source}: {exc.message}") from None


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{where}] must be a table")
    return value


def settings_of(config: Config) -> Iterator[tuple[str, Key, Any]]:
    """Every key of every section as (dotted name, key, value), sub-tables walked into:
    ``("actors.gpu_layout.params.repel_k", key, 250.0)``. The one walk over a configuration."""
    def walk(prefix: str, settings: Any) -> Iterator[tuple[str, Key, Any]]:
        for key in keys(type(settings)):
            value = getattr(settings, key.name)
            if key.table is not None:
                yield from walk(f"{prefix}.{key.name}", value)
            else:
                yield f"{prefix}.{key.name}", key, value

    yield from walk("server", config.server)
    yield from walk("log", config.log)
    yield from walk("supervisor", config.supervisor)
    yield from walk("cluster", config.cluster)
    for name in ACTOR_SETTINGS:
        section = config.actors.section(name)
        yield from walk(f"actors.{name}", section.policy)
        yield from walk(f"actors.{name}", section.settings)


def effective(config: Config) -> dict[str, Any]:
    """Every section's values as TOML would hold them, secrets masked (``--check-config``)."""
    out: dict[str, Any] = {"server": {}, "log": {}, "supervisor": {}, "cluster": {}, "actors": {}}
    for name, key, value in settings_of(config):
        *tables, leaf = name.split(".")
        table = out
        for part in tables:
            table = table.setdefault(part, {})
        if key.rule.secret:
            table[leaf] = "(set)" if value else "(not set)"
        else:
            table[leaf] = list(value) if isinstance(value, tuple) else value
    return out


def replace_server(config: Config, **changes: Any) -> Config:
    """The same configuration with some ``[server]`` values changed (tokens resolved later)."""
    return dataclasses.replace(config, server=dataclasses.replace(config.server, **changes))
