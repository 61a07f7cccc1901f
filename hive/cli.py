"""``hive-supervisor``: the command line (``make run`` calls it with no arguments)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
from typing import Any

from hive.version import version

# Only the standard library above (and hive.version, which imports nothing else): `supervisor`
# must be checked before anything imports it.

__all__ = ["DESCRIPTION", "EPILOG", "LOG_FORMATS", "LOG_LEVELS", "main", "parse_args",
           "supervisor_clash"]


DESCRIPTION = """\
hive-supervisor keeps a swarm of AI agents alive, watched and visible: a tree of supervised
actors (layout physics, health, and the agents' planes as they land) behind an aiohttp front
end that streams 3D positions over /wss, health over /api/health and /ws/hybrid-health,
Prometheus metrics over /metrics, and the live actor tree over /admin/actors.

Every setting has a default, so no file, GPU, Docker or API key is needed to start. Settings
are read in this order, later ones winning: built-in defaults, the --config TOML file,
HIVE_<SECTION>_<KEY> environment variables (e.g. HIVE_SERVER_PORT=9000,
HIVE_ACTORS_GPU_LAYOUT_TICK_HZ=30), then these flags."""

EPILOG = """\
config file sections: [server] host, port, admin_token, api_token, allowed_origins,
allowed_hosts, relay_tools, state_dir, max_ws_message_bytes, max_body_bytes, max_clients,
ping_interval_s, idle_timeout_s, shutdown_timeout_s; [log] level, format, access;
[supervisor] strategy, max_restarts, within_seconds; [actors.<name>] restart, max_restarts,
within_seconds, backoff_min, backoff_max, enabled and the actor's own keys (see README).

signals: SIGTERM and SIGINT shut down cleanly; SIGHUP re-reads the --config file and applies
what can change live (one log line says what it applied and what needs a restart).

exit status: 0 after a clean shutdown (SIGTERM or Ctrl-C), 1 when the root supervisor gave up
(restart intensity exceeded), 2 for a configuration error, a port that cannot be bound, or a
non-loopback --host without an API token."""


LOG_FORMATS = ("auto", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def supervisor_clash() -> str | None:
    """Why ``import supervisor`` would not find this daemon's ``supervisor.py``, or None.

    The PyPI package ``supervisor`` (supervisord, which the agents' own container runs) has a
    top-level package of the same name, and a package wins over a module on the same path:
    installed side by side, every import of ours finds supervisord's and fails obscurely."""
    try:
        spec = importlib.util.find_spec("supervisor")
    except (ImportError, ValueError):  # a broken install: as missing
        spec = None
    if spec is None:
        return ("the module `supervisor` (this daemon's supervision trees) is missing: reinstall "
                "hive-supervisor in its own environment (README, Install)")
    if spec.submodule_search_locations is None:  # a module, as ours is (supervisord's: a package)
        return None
    where = spec.origin or "a package"
    return (f"the module `supervisor` found at {where} is not this daemon's: supervisord (the "
            "PyPI package `supervisor`) is probably installed in the same Python environment. "
            "Install hive-supervisor as an application, in an environment of its own: "
            "`python3 -m venv ~/.local/hive && ~/.local/hive/bin/pip install hive-supervisor`, "
            "`pipx install hive-supervisor` or `uv tool install hive-supervisor` (README, Install)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hive-supervisor", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hive-supervisor {version()}")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: none, built-in defaults)")
    parser.add_argument("--check-config", metavar="FILE", nargs="?", const="", default=None,
                        help="validate FILE (or --config, or the defaults) with the environment "
                             "and flags as a start would, print the effective settings as JSON "
                             "(secrets masked) and exit: 0 when valid, 2 otherwise")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int,
                        help="TCP port to listen on (default 8080; 0 picks a free port)")
    parser.add_argument("--api-token-file", metavar="FILE",
                        help="file holding the API token that changes (swarms, graph, drags, "
                             "voice commands, the MCP relay) need (default: $HIVE_API_TOKEN, "
                             "else [server] api_token; required when --host is not loopback)")
    parser.add_argument("--admin-token-file", metavar="FILE",
                        help="file holding the bearer token for /admin routes (default: "
                             "$HIVE_ADMIN_TOKEN, else [server] admin_token, else one is made and "
                             "kept in <state_dir>/admin-token, mode 0600)")
    parser.add_argument("--admin-token", "--api-token", dest="token_on_command_line",
                        metavar="TOKEN", help=argparse.SUPPRESS)
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=None,
                        help="console on a terminal, JSON lines otherwise (default auto; "
                             "[log] format, $HIVE_LOG_FORMAT)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="least severe event logged (default info; [log] level, "
                             "$HIVE_LOG_LEVEL)")
    parser.add_argument("--access-log", action="store_true", default=None,
                        help="one line per HTTP request ([log] access, $HIVE_LOG_ACCESS)")
    args = parser.parse_args(argv)
    if args.token_on_command_line is not None:
        parser.error("a token on the command line shows in `ps` to every user of this machine: "
                     "use --admin-token-file / --api-token-file FILE, or $HIVE_ADMIN_TOKEN / "
                     "$HIVE_API_TOKEN")
    return args


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"server": {"host": args.host, "port": args.port},
            "log": {"level": args.log_level, "format": args.log_format, "access": args.access_log}}


def _early_logging(args: argparse.Namespace) -> None:
    """Logging before the configuration is read (its errors are logged too): flags, then the
    environment, then the defaults; a bad value here is reported by the configuration."""
    from hive.logs import configure_logging

    fmt = args.log_format or os.environ.get("HIVE_LOG_FORMAT", "auto")
    level = args.log_level or os.environ.get("HIVE_LOG_LEVEL", "info")
    configure_logging(fmt if fmt in LOG_FORMATS else "auto",  # type: ignore[arg-type]
                      level if level in LOG_LEVELS else "info")


def _check_config(args: argparse.Namespace, config: Any, path: str | None) -> int:
    """``--check-config``: what a start would run on, secrets masked; 2 for what a start refuses
    (the token files and values checked as a start checks them; nothing is written)."""
    from hive.config import ConfigError, effective
    from hive.tokens import resolve_tokens
    from transport.security import exposure_problem

    try:
        tokens = resolve_tokens(
            api_file=args.api_token_file, admin_file=args.admin_token_file, env=os.environ,
            config_api=config.server.api_token, config_admin=config.server.admin_token,
            state_dir=config.server.state_dir, keep_admin=False)
    except (ConfigError, ValueError) as exc:
        print(f"hive-supervisor: configuration error: {exc}", file=sys.stderr)
        return 2
    shown = effective(config)
    for key, variable, flag in (("api_token", "HIVE_API_TOKEN", args.api_token_file),
                                ("admin_token", "HIVE_ADMIN_TOKEN", args.admin_token_file)):
        if flag:
            shown["server"][key] = f"(from {flag})"
        elif os.environ.get(variable):
            shown["server"][key] = f"(from ${variable})"
        elif os.environ.get(f"HIVE_SERVER_{key.upper()}"):
            shown["server"][key] = f"(from $HIVE_SERVER_{key.upper()})"
    if not tokens.admin:
        shown["server"]["admin_token"] = "(made at the first start, kept in <state_dir>/admin-token)"
    print(json.dumps({"config_file": path or None, **shown}, indent=2))
    problem = exposure_problem(config.server.host, tokens.api)
    if problem is not None:
        print(f"hive-supervisor: {problem}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    clash = supervisor_clash()
    if clash is not None:
        print(f"hive-supervisor: {clash}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    from actors.memory import limit_arenas

    limit_arenas()  # before the actors', executors' and Numba's threads make arenas of their own
    _early_logging(args)
    import structlog

    from hive.config import ConfigError, check_environment, load_config, replace_server
    from hive.logs import configure_logging
    from hive.tokens import TOKEN_VARIABLES, resolve_tokens
    from hive.tree import build_root

    log = structlog.get_logger("hive")
    path = args.config if args.check_config in (None, "") else args.check_config

    environment = dict(os.environ)  # as at start: the token variables are taken out below

    def load() -> Any:
        """The configuration as a start reads it; SIGHUP reads it again through this."""
        config = load_config(path, env=environment, overrides=_overrides(args))
        build_root(config)  # validates the actors' own settings before anything starts
        return config

    try:
        check_environment(os.environ, also_known=TOKEN_VARIABLES)
        config = load()
        if args.check_config is not None:
            return _check_config(args, config, path)
        tokens = resolve_tokens(
            api_file=args.api_token_file, admin_file=args.admin_token_file, env=os.environ,
            config_api=config.server.api_token, config_admin=config.server.admin_token,
            state_dir=config.server.state_dir)
    except (ConfigError, ValueError) as exc:
        log.error("config.invalid", error=str(exc))
        print(f"hive-supervisor: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log.format, config.log.level)
    for variable in TOKEN_VARIABLES:  # resolved: children (MCP servers, CLI runs) get none
        os.environ.pop(variable, None)
    if tokens.admin_file is not None:
        log.info("admin.token_file", file=str(tokens.admin_file.resolve()),
                 hint="the admin token is in this file (mode 0600); --admin-token-file or "
                      "$HIVE_ADMIN_TOKEN choose another")
    loaded = config
    config = replace_server(config, api_token=tokens.api, admin_token=tokens.admin)
    from hive.daemon import serve

    try:
        return asyncio.run(serve(config, reload=load if path else None, loaded=loaded))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
