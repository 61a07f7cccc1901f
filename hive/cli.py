"""``hive-supervisor``: the command line (``make run`` calls it with no arguments)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from hive.config import ConfigError, check_environment, load_config, replace_server
from hive.logs import configure_logging
from hive.tokens import TOKEN_VARIABLES, resolve_tokens

__all__ = ["DESCRIPTION", "EPILOG", "LOG_FORMATS", "LOG_LEVELS", "main", "parse_args"]


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
ping_interval_s, idle_timeout_s, shutdown_timeout_s;
[supervisor] strategy, max_restarts, within_seconds; [actors.<name>] restart, max_restarts,
within_seconds, backoff_min, backoff_max, enabled and the actor's own keys (see README).

exit status: 0 after a clean shutdown (SIGTERM or Ctrl-C), 1 when the root supervisor gave up
(restart intensity exceeded), 2 for a configuration error, a port that cannot be bound, or a
non-loopback --host without an API token."""


LOG_FORMATS = ("auto", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hive-supervisor", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: none, built-in defaults)")
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
                             "$HIVE_LOG_FORMAT)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="minimum level of events logged (default info; $HIVE_LOG_LEVEL)")
    args = parser.parse_args(argv)
    if args.token_on_command_line is not None:
        parser.error("a token on the command line shows in `ps` to every user of this machine: "
                     "use --admin-token-file / --api-token-file FILE, or $HIVE_ADMIN_TOKEN / "
                     "$HIVE_API_TOKEN")
    for flag, variable, choices in (("log_format", "HIVE_LOG_FORMAT", LOG_FORMATS),
                                    ("log_level", "HIVE_LOG_LEVEL", LOG_LEVELS)):
        if getattr(args, flag) is None:
            value = os.environ.get(variable, choices[0] if flag == "log_format" else "info")
            if value not in choices:
                parser.error(f"${variable}={value!r}: choose one of {', '.join(choices)}")
            setattr(args, flag, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    import structlog

    log = structlog.get_logger("hive")
    try:
        config = load_config(
            args.config,
            overrides={"server": {"host": args.host, "port": args.port}},
        )
        check_environment(os.environ, also_known=(*TOKEN_VARIABLES, "HIVE_LOG_FORMAT", "HIVE_LOG_LEVEL"))
        from hive.tree import build_root

        build_root(config)  # validates the actors' own settings before anything starts
        tokens = resolve_tokens(
            api_file=args.api_token_file, admin_file=args.admin_token_file, env=os.environ,
            config_api=config.server.api_token, config_admin=config.server.admin_token,
            state_dir=config.server.state_dir)
    except (ConfigError, ValueError) as exc:
        log.error("config.invalid", error=str(exc))
        print(f"hive-supervisor: configuration error: {exc}", file=sys.stderr)
        return 2
    for variable in TOKEN_VARIABLES:  # resolved: children (MCP servers, CLI runs) get none
        os.environ.pop(variable, None)
    if tokens.admin_file is not None:
        log.info("admin.token_file", file=str(tokens.admin_file.resolve()),
                 hint="the admin token is in this file (mode 0600); --admin-token-file or "
                      "$HIVE_ADMIN_TOKEN choose another")
    config = replace_server(config, api_token=tokens.api, admin_token=tokens.admin)
    from hive.daemon import serve

    try:
        return asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
