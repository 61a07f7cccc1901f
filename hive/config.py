"""Configuration: embedded defaults, then a TOML file, then ``HIVE_*`` environment variables,
then command-line flags. Every key is declared once here with its type and bounds; an unknown
key or a bad value stops start-up with a message that names the key.

Environment overrides are ``HIVE_<SECTION>_<KEY>``, e.g. ``HIVE_SERVER_PORT=9000`` or
``HIVE_ACTORS_GPU_LAYOUT_TICK_HZ=30`` (lists are comma-separated).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from transport.relay_policy import DEFAULT_RELAY_TOOLS

__all__ = [
    "ACTORS",
    "ACTOR_COMMON",
    "ACTOR_NAMES",
    "GPU_PARAMS_SECTION",
    "MAX_SECONDS",
    "SECRET_KEYS",
    "SERVER",
    "SUPERVISOR",
    "Config",
    "ConfigError",
    "MiB",
    "Parser",
    "ServerConfig",
    "SupervisorConfig",
    "load_config",
]

ACTOR_NAMES = ("gpu_layout", "mcp", "hive_mind", "speech", "health")
# Keys whose values are never repeated in an error message or a log line.
SECRET_KEYS = frozenset({"admin_token", "api_token", "api_key"})


class ConfigError(ValueError):
    """A configuration problem, phrased for the operator."""


# -- value types: each parses a TOML value or an environment string ---------------------------

Parser = Callable[[Any], Any]


def _int(lo: int | None = None, hi: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            value = value.strip()
            if not value.lstrip("-").isdigit():
                raise ValueError(f"expected an integer, got {value!r}")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"expected an integer in [{lo}, {hi}], got {value}")
        return value

    return parse


# The longest duration any setting takes: beyond it, timers overflow the platform's time_t.
MAX_SECONDS = 86_400.0


def _float(lo: float | None = None, hi: float | None = None, strict_lo: bool = False) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise ValueError("expected a finite number")
        if lo is not None and (value < lo or (strict_lo and value == lo)):
            raise ValueError(f"expected a number {'>' if strict_lo else '>='} {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"expected a number <= {hi}, got {value}")
        return value

    return parse


def _seconds(lo: float, strict_lo: bool = False) -> Parser:
    """A duration: a number from ``lo`` up to a day."""
    return _float(lo, MAX_SECONDS, strict_lo)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _choice(*options: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}; got {value!r}")
        return str(value)

    return parse


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


# -- the schema: (parser, default) per key ---------------------------------------------------

MiB = 1024 * 1024

SERVER: dict[str, tuple[Parser, Any]] = {
    "host": (_str, "127.0.0.1"),
    "port": (_int(0, 65535), 8080),
    "admin_token": (_str, ""),
    "api_token": (_str, ""),
    "allowed_origins": (_list, ()),
    "allowed_hosts": (_list, ()),
    "relay_tools": (_list, DEFAULT_RELAY_TOOLS),
    "state_dir": (_str, ".hive-state"),
    "max_ws_message_bytes": (_int(1024), 4 * MiB),
    "max_body_bytes": (_int(1024), 64 * MiB),
    "max_clients": (_int(1), 1000),
    "ping_interval_s": (_seconds(0.1), 5.0),
    "idle_timeout_s": (_seconds(1.0), 30.0),
    "shutdown_timeout_s": (_seconds(0.5), 5.0),
}

SUPERVISOR: dict[str, tuple[Parser, Any]] = {
    "strategy": (_choice("one_for_one", "one_for_all", "rest_for_one"), "one_for_one"),
    "max_restarts": (_int(0), 3),
    "within_seconds": (_seconds(0, strict_lo=True), 5.0),
}

ACTOR_COMMON: dict[str, tuple[Parser, Any]] = {
    "restart": (_choice("permanent", "transient", "temporary"), "permanent"),
    "max_restarts": (_int(0), None),
    "within_seconds": (_seconds(0, strict_lo=True), 60.0),
    "backoff_min": (_seconds(0), None),
    "backoff_max": (_seconds(0), None),
    "enabled": (_bool, True),
}

ACTORS: dict[str, dict[str, tuple[Parser, Any]]] = {
    "gpu_layout": {
        "backend": (_choice("auto", "cpu", "cuda"), "auto"),
        "tick_hz": (_float(0, 1000, strict_lo=True), 60.0),
        "min_tick_hz": (_float(0, 1000, strict_lo=True), 5.0),
        "steps_per_tick": (_int(1, 100), 1),
        "settle_energy": (_float(0), 1e-3),
    },
    "mcp": {
        "transport": (_choice("stdio", "tcp"), "stdio"),
        "host": (_str, "127.0.0.1"),
        "port": (_int(1, 65535), 9500),
        "command": (_list, ()),
        "pool_size": (_int(1, 64), 4),
        "poll_interval_s": (_seconds(0.05), 1.0),
        "call_timeout_s": (_seconds(0.1), 10.0),
        "handshake_timeout_s": (_seconds(0.1), 5.0),
        "state_dir": (_str, ".hive-state/mcp"),
        "maintain_every_calls": (_int(10), 50),
    },
    "hive_mind": {
        "backend": (_choice("local", "docker"), "local"),
        "container": (_str, "multi-agent-container"),
        "docker_url": (_str, ""),
        "cli": (_list, ()),
        "sessions_dir": (_str, ""),
        "command_timeout_s": (_seconds(0.1), 30.0),
        "retries": (_int(0, 10), 3),
        "health_interval_s": (_seconds(0.5), 30.0),
        "workers": (_int(1, 100), 2),
    },
    "speech": {
        "stt": (_choice("pocketsphinx", "http", "faster-whisper"), "pocketsphinx"),
        "tts": (_choice("espeak-ng", "http"), "espeak-ng"),
        "stt_url": (_str, ""),
        "tts_url": (_str, ""),
        "stt_model": (_str, "whisper-1"),
        "tts_model": (_str, "kokoro"),
        "tts_voice": (_str, "af_heart"),
        "espeak_voice": (_str, "en-us"),
        "http_timeout_s": (_seconds(0.1), 30.0),
        "api_key": (_str, ""),
        "faster_whisper_model_dir": (_str, ""),
        "workers": (_int(1, 16), 2),
        "max_chunk_bytes": (_int(1024), 256 * 1024),
        "max_utterance_s": (_seconds(1.0), 30.0),
        "max_text_chars": (_int(10), 2_000),
    },
    "health": {
        "interval_s": (_seconds(0.05), 2.0),
    },
}

GPU_PARAMS_SECTION = "params"  # [actors.gpu_layout.params]: SimParams fields, validated there


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str = ""
    api_token: str = ""
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    relay_tools: tuple[str, ...] = DEFAULT_RELAY_TOOLS
    state_dir: str = ".hive-state"
    max_ws_message_bytes: int = 4 * MiB
    max_body_bytes: int = 64 * MiB
    max_clients: int = 1000
    ping_interval_s: float = 5.0
    idle_timeout_s: float = 30.0
    shutdown_timeout_s: float = 5.0


@dataclass(frozen=True)
class SupervisorConfig:
    strategy: str = "one_for_one"
    max_restarts: int = 3
    within_seconds: float = 5.0


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    actors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def actor(self, name: str) -> Mapping[str, Any]:
        return self.actors[name]


def _section(
    where: str, schema: Mapping[str, tuple[Parser, Any]], values: Mapping[str, Any],
    env_prefix: str, env: Mapping[str, str], extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    out = {key: default for key, (_, default) in schema.items()}
    for key, value in values.items():
        if key in extra:
            continue
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"[{where}] {key}: unknown key (known keys: {known})")
        out[key] = _parse(where, key, schema[key][0], value)
    for key, (parser, _) in schema.items():
        env_key = f"{env_prefix}_{key.upper()}"
        if env_key in env:
            out[key] = _parse(where, key, parser, env[env_key], f" (from ${env_key})")
    return out


def _parse(where: str, key: str, parser: Parser, value: Any, source: str = "") -> Any:
    try:
        return parser(value)
    except ValueError as exc:
        if key in SECRET_KEYS:  # the message would quote the secret
            raise ConfigError(f"[{where}] {key}{source}: expected a string") from None
        raise ConfigError(f"[{where}] {key}{source}: {exc}") from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Defaults < file < environment < ``overrides`` (command-line flags), validated."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:  # a directory, no permission, ...
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key in data:
        if key not in ("server", "supervisor", "actors"):
            raise ConfigError(f"[{key}]: unknown section (known: server, supervisor, actors)")
    server = _section("server", SERVER, _table(data, "server"), "HIVE_SERVER", env)
    supervisor = _section(
        "supervisor", SUPERVISOR, _table(data, "supervisor"), "HIVE_SUPERVISOR", env)
    for section, values in (overrides or {}).items():
        target = {"server": server, "supervisor": supervisor}[section]
        schema = SERVER if section == "server" else SUPERVISOR
        for key, value in values.items():
            if value is not None:
                target[key] = _parse(section, key, schema[key][0], value)
    actors_data = _table(data, "actors")
    for name in actors_data:
        if name not in ACTORS:
            raise ConfigError(f"[actors.{name}]: unknown actor (known: {', '.join(ACTORS)})")
    actors: dict[str, Mapping[str, Any]] = {}
    for name, own in ACTORS.items():
        values = actors_data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[actors.{name}] must be a table")
        extra = (GPU_PARAMS_SECTION,) if name == "gpu_layout" else ()
        settings = _section(f"actors.{name}", {**ACTOR_COMMON, **own}, values,
                            f"HIVE_ACTORS_{name.upper()}", env, extra)
        if extra:
            settings["params"] = _gpu_params(values.get(GPU_PARAMS_SECTION, {}), env)
        lo, hi = settings["backoff_min"], settings["backoff_max"]
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"[actors.{name}] backoff_min: must not exceed backoff_max")
        actors[name] = MappingProxyType(settings)
    return Config(ServerConfig(**server), SupervisorConfig(**supervisor), MappingProxyType(actors))


def _gpu_params(values: Any, env: Mapping[str, str]) -> Mapping[str, float]:
    """SimParams fields, from the file and ``HIVE_ACTORS_GPU_LAYOUT_PARAMS_<FIELD>``."""
    import dataclasses

    from gpu import SimParams  # the layout's own validation names the field

    if not isinstance(values, dict):
        raise ConfigError("[actors.gpu_layout.params] must be a table")
    values = dict(values)
    for f in dataclasses.fields(SimParams):
        variable = f"HIVE_ACTORS_GPU_LAYOUT_PARAMS_{f.name.upper()}"
        if variable in env:
            parser = _int() if isinstance(f.default, int) and not isinstance(f.default, bool) else _float()
            values[f.name] = _parse("actors.gpu_layout.params", f.name, parser, env[variable],
                                    f" (from ${variable})")
    try:
        SimParams(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[actors.gpu_layout.params] {exc}") from None
    return MappingProxyType(dict(values))


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value
