"""hive.tokens: where the API and admin tokens come from, and that a made one is kept 0600."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive.config import ConfigError, load_config
from hive.tokens import Tokens, resolve_tokens
from transport.relay_policy import DEFAULT_RELAY_TOOLS, RelayPolicy, risky_tools

GOOD = "a-token-long-enough-0001"


def resolve(tmp_path: Path, **kw: object) -> Tokens:
    args: dict[str, object] = {"api_file": None, "admin_file": None, "env": {}, "config_api": "",
                               "config_admin": "", "state_dir": str(tmp_path / "state")}
    args.update(kw)
    return resolve_tokens(**args)  # type: ignore[arg-type]


def test_precedence_file_then_environment_then_config(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text(f"  {GOOD}-file\n")
    f.chmod(0o600)
    env = {"HIVE_API_TOKEN": f"{GOOD}-env", "HIVE_ADMIN_TOKEN": f"{GOOD}-admin-env"}
    tokens = resolve(tmp_path, api_file=str(f), env=env, config_api=f"{GOOD}-cfg")
    assert tokens.api == f"{GOOD}-file" and tokens.admin == f"{GOOD}-admin-env"
    tokens = resolve(tmp_path, env=env, config_api=f"{GOOD}-cfg")
    assert tokens.api == f"{GOOD}-env"
    tokens = resolve(tmp_path, config_api=f"{GOOD}-cfg", config_admin=f"{GOOD}-adm")
    assert tokens.api == f"{GOOD}-cfg" and tokens.admin == f"{GOOD}-adm"
    assert tokens.admin_file is None


def test_no_api_token_by_default_and_a_made_admin_token_is_kept_0600(tmp_path: Path) -> None:
    first = resolve(tmp_path)
    assert first.api == ""
    kept = tmp_path / "state" / "admin-token"
    assert first.admin_file == kept and kept.stat().st_mode & 0o777 == 0o600
    assert kept.read_text().strip() == first.admin
    kept.chmod(0o644)  # loosened by someone: tightened again, the token kept
    second = resolve(tmp_path)
    assert second.admin == first.admin and kept.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("content", "message"), [
    ("", "must hold the token alone"),
    ("two\nlines-of-token-text", "must hold the token alone"),
    ("short", "at least 16 characters"),
])
def test_bad_token_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "t"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve(tmp_path, api_file=str(f))
    with pytest.raises(ConfigError, match="not found"):
        resolve(tmp_path, admin_file=str(tmp_path / "missing"))


def test_a_bad_secret_is_not_quoted_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\napi_token = 123456789012345678\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "api_token" in str(info.value) and "123456789012345678" not in str(info.value)


def test_the_default_relay_list_runs_nothing() -> None:
    assert risky_tools(DEFAULT_RELAY_TOOLS) == []
    assert risky_tools(["terminal_execute", "workflow_execute", "config_set", "agent_list"]) == [
        "config_set", "terminal_execute", "workflow_execute"]
    assert load_config(env={}).server.relay_tools == DEFAULT_RELAY_TOOLS
    policy = RelayPolicy.of(DEFAULT_RELAY_TOOLS)
    assert policy.refusal("tools/call", {"name": "agent_list"}) is None
    assert "allow-list" in (policy.refusal("tools/call", {"name": "terminal_execute"}) or "")
    assert "not forwarded" in (policy.refusal("resources/read", {}) or "")
    assert policy.filter_listing({"tools": [{"name": "agent_list"}, {"name": "terminal_create"}]}) \
        == {"tools": [{"name": "agent_list"}]}
