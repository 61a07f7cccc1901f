"""Configuration: defaults, file, environment, flags; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive.config import ACTOR_SETTINGS, ConfigError, check_environment, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hive.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    config = load_config(env={})
    assert config.server.host == "127.0.0.1" and config.server.port == 8080
    assert config.supervisor.strategy == "one_for_one"
    assert config.supervisor.max_restarts == 3 and config.supervisor.within_seconds == 5.0
    assert set(ACTOR_SETTINGS) == {"gpu_layout", "mcp", "hive_mind", "speech", "health"}
    assert config.actors.gpu_layout.settings.tick_hz == 60.0
    assert config.actors.mcp.settings.port == 9500


def test_file_env_and_flags_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
port = 9000
admin_token = "from-file"
[supervisor]
strategy = "rest_for_one"
[actors.gpu_layout]
restart = "transient"
backoff_min = 0.5
backoff_max = 10
tick_hz = 30
[actors.gpu_layout.params]
repel_k = 250.0
""")
    config = load_config(path, env={"HIVE_SERVER_PORT": "9100",
                                    "HIVE_ACTORS_GPU_LAYOUT_TICK_HZ": "20",
                                    "HIVE_SERVER_ALLOWED_ORIGINS": "http://a, http://b"},
                         overrides={"server": {"port": 9200, "host": None}})
    assert config.server.port == 9200
    assert config.server.admin_token == "from-file"
    assert config.server.allowed_origins == ("http://a", "http://b")
    assert config.supervisor.strategy == "rest_for_one"
    layout = config.actors.gpu_layout
    assert layout.settings.tick_hz == 20.0 and layout.policy.restart == "transient"
    assert layout.settings.params.repel_k == 250.0


@pytest.mark.parametrize(("text", "message"), [
    ("[server]\nprot = 1\n", r"\[server\] prot: unknown key"),
    ("[server]\nport = 'eighty'\n", r"\[server\] port: expected an integer"),
    ("[server]\nport = 70000\n", r"\[server\] port: expected an integer in \[0, 65535\]"),
    ("[supervisor]\nstrategy = 'all_for_none'\n", r"\[supervisor\] strategy: expected one of"),
    ("[actors.gpu_layout]\ntick_hz = -1\n", r"\[actors.gpu_layout\] tick_hz"),
    ("[actors.nope]\n", r"\[actors.nope\]: unknown actor"),
    ("[actors.mcp]\ntransport = 'carrier-pigeon'\n", r"\[actors.mcp\] transport"),
    ("[actors.gpu_layout.params]\ndt = -0.1\n", r"dt"),
    ("[actors.gpu_layout.params]\nwarp_factor = 9\n", r"warp_factor"),
    ("[actors.health]\nbackoff_min = 5\nbackoff_max = 1\n", r"backoff_min"),
    ("[extras]\n", r"\[extras\]: unknown section"),
    ("not toml at all [", r"not valid TOML"),
    ("[server]\nshutdown_timeout_s = 1e308\n", r"shutdown_timeout_s: expected a number <= 86400"),
    ("[actors.health]\ninterval_s = 1e308\n", r"\[actors.health\] interval_s: expected a number <= 86400"),
    # TOML has numbers, booleans and lists: a quoted one is a typo, not a value to guess at
    ("[server]\nport = '9000'\n", r"port: expected an integer, got the string '9000' \(write it without quotes\)"),
    ("[actors.speech]\nenabled = 'false'\n", r"enabled: expected true or false, got the string"),
    ("[actors.gpu_layout]\ntick_hz = '30'\n", r"tick_hz: expected a number, got the string"),
    ("[server]\nallowed_origins = 'http://a'\n", r"allowed_origins: expected a list of strings"),
    ("[server]\nhost = ''\n", r"\[server\] host: must name an address"),
    ("[cluster]\nnats_url = 'http://nats:4222'\n", r"\[cluster\] nats_url: must start with nats://"),
    ("[cluster]\nnode_name = 'a.b'\n", r"\[cluster\] node_name: must be 1-64 letters"),
    ("[cluster]\nlease_ttl_s = 0.2\n", r"\[cluster\] lease_ttl_s: expected a number >= 1"),
    ("[cluster]\nleader = 'me'\n", r"\[cluster\] leader: unknown key"),
    ("[cluster]\nlease_ttl_s = 2\nconnect_timeout_s = 1.5\n",
     r"\[cluster\] connect_timeout_s: must be at most half of lease_ttl_s"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


def test_physics_parameters_from_the_environment() -> None:
    config = load_config(env={"HIVE_ACTORS_GPU_LAYOUT_PARAMS_REPEL_K": "123.5"})
    assert config.actors.gpu_layout.settings.params.repel_k == 123.5
    with pytest.raises(ConfigError, match=r"dt \(from \$HIVE_ACTORS_GPU_LAYOUT_PARAMS_DT\)"):
        load_config(env={"HIVE_ACTORS_GPU_LAYOUT_PARAMS_DT": "fast"})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"port \(from \$HIVE_SERVER_PORT\)"):
        load_config(env={"HIVE_SERVER_PORT": "http"})


def test_a_variable_nothing_reads_is_refused_with_the_closest_name() -> None:
    check_environment({"HIVE_SERVER_PORT": "1", "HIVE_ACTORS_HEALTH_RESTART": "permanent",
                       "HIVE_ACTORS_GPU_LAYOUT_PARAMS_DT": "0.01", "HIVE_X": "1", "PATH": "/bin"},
                      also_known=("HIVE_X",))
    with pytest.raises(ConfigError, match=r"\$HIVE_SERVER_PROT: no setting reads this variable "
                                          r"\(did you mean \$HIVE_SERVER_PORT\?\)"):
        check_environment({"HIVE_SERVER_PROT": "9000"})
    with pytest.raises(ConfigError, match=r"\$HIVE_ACTORS_GPU_LAYOUT_PARAMS: no setting"):
        check_environment({"HIVE_ACTORS_GPU_LAYOUT_PARAMS": "1"})  # a table, not a value


def test_missing_unreadable_or_binary_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", env={})
    with pytest.raises(ConfigError, match=r"cannot read config file .*: Is a directory"):
        load_config(tmp_path, env={})
    binary = tmp_path / "latin1.toml"
    binary.write_bytes(b"[server]\nhost = '\xff'\n")
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text"):
        load_config(binary, env={})


def test_no_cluster_by_default_and_one_from_the_environment() -> None:
    """Without [cluster] there is no cluster actor in the tree (one process, no NATS)."""
    from hive.tree import build_root

    assert not load_config(env={}).cluster.enabled
    assert "cluster" not in [c.name for c in build_root(load_config(env={})).children]
    config = load_config(env={"HIVE_CLUSTER_NATS_URL": "nats://127.0.0.1:4222",
                              "HIVE_CLUSTER_NODE_NAME": "hive-a"})
    assert config.cluster.enabled and config.cluster.name == "hive-a"
    assert build_root(config).children[0].name == "cluster"
