"""Settings: the environment table, the YAML config, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.settings import Config, ConfigError, Env, Settings, load_config, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "forge.example.yml"


def test_example_config_is_valid():
    """The committed forge.example.yml loads with the shape product.md shows."""
    config = load_config(EXAMPLE, required=True)
    assert config.roles.operator == ["U0OPS", "S0ONCALL"]
    assert config.queue_aliases["ai-processing"] == "embeddings"
    assert config.dlq.min_attempts == 3 and config.approval_ttl_minutes == 15


@pytest.mark.parametrize(
    "yaml_text, key",
    [
        ("roles:\n  operator: [bob]\n", "roles.operator"),
        ("channels:\n  alerts: general\n", "channels.alerts"),
        ("approval_ttl_minutes: 0\n", "approval_ttl_minutes"),
        ("tenant_id: default\n", "tenant_id"),
        ("queues: ['bull:email']\n", "queues"),
        ("dlq:\n  min_attempt: 3\n", "dlq.min_attempt: unknown key"),
        ("timeouts:\n  health_check: 0\n", "timeouts.health_check"),
        ("roles: [U1]\n", "roles"),
        ("approvals:\n  renew_seconds: 60\n", "renew_seconds must be shorter"),
        ("break_glass:\n  users: ['Alice Smith']\n", "break_glass.users"),
    ],
)
def test_bad_config_names_the_key(tmp_path, yaml_text, key):
    """Each invalid value is reported with the file and the key that holds it."""
    path = tmp_path / "forge.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path, required=True)
    assert str(path) in str(err.value) and key in str(err.value)


def test_default_execution_lease_turns_a_dead_run_unknown_within_two_minutes():
    """A dead replica's lease lapses within lease_seconds; the next sweep then marks it."""
    approvals = Config().approvals
    assert approvals.renew_seconds < approvals.lease_seconds
    assert approvals.lease_seconds + approvals.sweep_seconds <= 120
    assert Config().break_glass.users == []  # break-glass is off unless someone is listed


def test_unparseable_yaml_is_a_config_error(tmp_path):
    """Broken YAML is a one-line error, not a traceback."""
    path = tmp_path / "forge.yml"
    path.write_text("roles: [\n")
    with pytest.raises(ConfigError, match="cannot read YAML"):
        load_config(path, required=True)


def test_named_config_file_must_exist(tmp_path, monkeypatch):
    """FORGE_CONFIG pointing nowhere is an error; the default path missing means defaults."""
    monkeypatch.setenv("FORGE_CONFIG", str(tmp_path / "missing.yml"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings()
    monkeypatch.delenv("FORGE_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert load_settings().config == Config()


def test_environment_precedence(monkeypatch):
    """FORGE_ENVIRONMENT wins over the config file, which wins over development."""
    assert Settings(Env(_env_file=None), Config()).environment == "development"
    assert Settings(Env(_env_file=None), Config(environment="staging")).environment == "staging"
    env = Env(_env_file=None, forge_environment="production")
    assert Settings(env, Config(environment="staging")).environment == "production"


def test_state_store_defaults_to_database_url():
    """FORGE_STATE_DATABASE_URL falls back to DATABASE_URL."""
    env = Env(_env_file=None, database_url="postgresql://db/clientforge")
    assert Settings(env, Config()).state_database_url == "postgresql://db/clientforge"


def test_secrets_are_masked_in_repr():
    """Tokens and DSNs never show in a repr."""
    env = Env(
        _env_file=None,
        slack_bot_token="xoxb-123-secret",
        database_url="postgresql://u:hunter2@db/x",
    )
    assert "xoxb-123-secret" not in repr(env) and "hunter2" not in repr(env)


def test_every_timeout_is_finite_and_positive():
    """No backend call may wait forever."""
    for name, value in Config().timeouts.model_dump().items():
        assert 0 < value < float("inf"), name


NAMES = ("REDIS_URL", "FORGE_HTTP_PORT", "SLACK_API_URL", "DATABASE_URL")


def test_the_environment_wins_over_the_env_file_which_wins_over_defaults(tmp_path, monkeypatch):
    """`.env` as pydantic-settings read it: export, quotes, comments, any case; the process wins."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# forge\nexport REDIS_URL='redis://file:6379/1'\nforge_http_port=4000 # the port\n"
        'SLACK_API_URL="http://slack.test/api/ # not a comment"\nDATABASE_URL=postgresql://file/db\n'
        "PG_PASSWORD=s3cret\nFORGE_STATE_DATABASE_URL=postgresql://forge:${PG_PASSWORD}@db/forge\n"
        "FORGE_ALERTMANAGER_TOKEN='${NOT_EXPANDED}'\n"
    )
    for name in (*NAMES, "PG_PASSWORD", "FORGE_STATE_DATABASE_URL", "FORGE_ALERTMANAGER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("database_url", "postgresql://process/db")
    env = Env(_env_file=dotenv)
    assert env.redis_url.get_secret_value() == "redis://file:6379/1"
    assert env.forge_http_port == 4000
    assert env.slack_api_url == "http://slack.test/api/ # not a comment"
    assert env.database_url.get_secret_value() == "postgresql://process/db"
    state = env.forge_state_database_url
    assert state is not None and state.get_secret_value() == "postgresql://forge:s3cret@db/forge"
    token = env.forge_alertmanager_token
    assert token is not None and token.get_secret_value() == "${NOT_EXPANDED}"
    assert Env(_env_file=dotenv, forge_http_port=5000).forge_http_port == 5000
    assert Env(_env_file=tmp_path / "missing").forge_http_port == 3100
