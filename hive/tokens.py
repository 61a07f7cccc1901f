"""The two bearer tokens, from where an operator can give them without showing them.

* The **API token** guards changes (swarms, the graph, drags, voice commands, the relay). From,
  in order: ``--api-token-file FILE``, ``$HIVE_API_TOKEN``, ``[server] api_token`` (or
  ``$HIVE_SERVER_API_TOKEN``). Unset by default: then the daemon must listen on loopback only.
* The **admin token** guards ``/admin``. From ``--admin-token-file FILE``,
  ``$HIVE_ADMIN_TOKEN``, ``[server] admin_token``; when none is given, the daemon makes one
  and keeps it in ``<state_dir>/admin-token`` (mode 0600), reused by later starts.

A token never reaches a log line (the log names the file) or the process list (there is no
flag that takes a token itself; files and the environment are not shown by ``ps``).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from hive.config import ConfigError

__all__ = ["ADMIN_TOKEN_FILE", "MIN_TOKEN_CHARS", "Tokens", "read_token_file", "resolve_tokens"]


log = structlog.get_logger("hive.tokens")

ADMIN_TOKEN_FILE = "admin-token"
# Where tokens may come from in the environment; removed once read, so that no child process
# (an MCP server, a hive-mind CLI run, an agent it starts) inherits them.
TOKEN_VARIABLES = ("HIVE_API_TOKEN", "HIVE_ADMIN_TOKEN", "HIVE_SERVER_API_TOKEN",
                   "HIVE_SERVER_ADMIN_TOKEN")
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Tokens:
    api: str
    admin: str
    admin_file: Path | None = None  # where a generated admin token was kept


def read_token_file(path: str | os.PathLike[str], what: str) -> str:
    """A token from a file: one line, surrounding whitespace ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc}") from None
    token = text.strip()
    if not token or "\n" in token:
        raise ConfigError(f"the {what} file {path} must hold the token alone, on one line")
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("token.file_readable_by_others", file=str(path), mode=oct(mode & 0o777),
                    hint=f"chmod 600 {path}")
    return token


def _check(token: str, what: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the {what} must be at least {MIN_TOKEN_CHARS} characters long")
    if any(c.isspace() for c in token):
        raise ConfigError(f"the {what} must not contain whitespace")
    return token


def _kept_admin_token(state_dir: Path) -> tuple[str, Path]:
    """The admin token kept in the state folder, made on first use with mode 0600."""
    path = state_dir / ADMIN_TOKEN_FILE
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        return _check(read_token_file(path, "admin token"), "admin token"), path
    # written whole, then renamed into place: a crash mid-way leaves no empty token file
    token = secrets.token_urlsafe(32)
    temporary = state_dir / f".{ADMIN_TOKEN_FILE}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return token, path


def resolve_tokens(
    *, api_file: str | None, admin_file: str | None, env: os._Environ[str] | dict[str, str],
    config_api: str, config_admin: str, state_dir: str, keep_admin: bool = True,
) -> Tokens:
    """Both tokens, by the precedence in this module's docstring; ConfigError when bad.
    ``keep_admin=False`` (``--check-config``) writes nothing: no admin token is made."""
    api = (read_token_file(api_file, "API token") if api_file
           else env.get("HIVE_API_TOKEN") or config_api)
    if api:
        _check(api, "API token")
    admin = (read_token_file(admin_file, "admin token") if admin_file
             else env.get("HIVE_ADMIN_TOKEN") or config_admin)
    kept: Path | None = None
    if admin:
        _check(admin, "admin token")
    elif keep_admin:
        try:
            admin, kept = _kept_admin_token(Path(state_dir))
        except OSError as exc:
            raise ConfigError(f"cannot keep the admin token in {state_dir}: {exc}") from None
    return Tokens(api, admin, kept)
