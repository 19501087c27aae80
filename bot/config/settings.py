"""Settings: the environment (and `.env`) and the YAML config file, validated at start."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config.environ import environment

Environment = Literal["development", "staging", "production"]
SLACK_PRINCIPAL = re.compile(r"^(\*|[UWS][A-Z0-9]{2,20})$")
SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
UNIX_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
REJECTED_TENANTS = {"default", "00000000-0000-0000-0000-000000000001"}


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class Env(BaseModel):
    """The environment table of product.md; a `.env` file is read too (`_env_file=None`: not)."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, _env_file: str | Path | None = ".env", **values: Any) -> None:
        found: dict[str, Any] = environment(list(type(self).model_fields), _env_file)
        super().__init__(**(found | values))

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    forge_config: Path = Path("forge.yml")
    forge_http_host: str = "0.0.0.0"
    forge_http_port: int = Field(3100, ge=1, le=65535)
    forge_environment: Environment | None = None
    forge_state_database_url: SecretStr | None = None
    database_url: SecretStr = SecretStr("postgresql://localhost:5432/clientforge")
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    elasticsearch_url: SecretStr = SecretStr("http://localhost:9200")
    clientforge_api_url: str = "http://localhost:3000"
    prometheus_url: str = "http://localhost:9090"
    grafana_url: str = "http://localhost:3005"
    forge_backup_dir: Path = Path("backups/database")
    forge_log_dir: Path = Path("logs")
    forge_alertmanager_token: SecretStr | None = None
    forge_replica_id: str | None = None
    forge_backup_s3_url: str | None = None
    forge_backup_s3_access_key_id: SecretStr | None = None
    forge_backup_s3_secret_access_key: SecretStr | None = None
    forge_backup_s3_region: str = "us-east-1"
    # `forge playground --demo`: its places, and how fast its ClientForge stand-in fails
    forge_demo_redis_url: SecretStr = SecretStr("redis://localhost:6379/15")
    forge_demo_dir: Path = Path(".forge-demo")
    forge_demo_jobs_per_second: float = Field(1.0, gt=0, le=100)
    forge_demo_backoff_scale: float = Field(1.0, gt=0, le=10)
    forge_demo_dlq_threshold: int = Field(5, ge=1, le=10_000)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Roles(_Section):
    """Slack user or user-group IDs per role; "*" is everyone."""

    viewer: list[str] = ["*"]
    operator: list[str] = []
    admin: list[str] = []

    @field_validator("viewer", "operator", "admin")
    @classmethod
    def _principals(cls, ids: list[str]) -> list[str]:
        return [_principal(i) for i in ids]


class Channels(_Section):
    """Channel IDs forge posts to or accepts destructive commands in."""

    alerts: str | None = None
    incidents: str | None = None
    destructive: list[str] = []

    @field_validator("alerts", "incidents")
    @classmethod
    def _one(cls, cid: str | None) -> str | None:
        return cid if cid is None else _channel(cid)

    @field_validator("destructive")
    @classmethod
    def _many(cls, ids: list[str]) -> list[str]:
        return [_channel(c) for c in ids]


class Dlq(_Section):
    """Which failed jobs count as dead letters."""

    min_attempts: int = Field(3, ge=1, le=1000)


class Backup(_Section):
    """Backups: how long dumps are kept and how long one dump or restore may take."""

    retention_days: int = Field(7, ge=1, le=3650)
    timeout_minutes: int = Field(55, ge=1, le=1440)


class AlertRoute(_Section):
    """Alerts whose labels all match go to this channel instead of `channels.alerts`."""

    match: dict[str, str]
    channel: str

    @field_validator("channel")
    @classmethod
    def _channel(cls, channel: str) -> str:
        if not re.fullmatch(r"[CG][A-Z0-9]{2,20}", channel):
            raise ValueError(f"{channel!r} is not a Slack channel ID (C…)")
        return channel


class RunbookEntry(_Section):
    """The remediation for one alert: steps to read, commands to run, `{label}` from the alert."""

    summary: str = ""
    steps: list[str] = []
    commands: list[str] = []
    expr: str = ""  # the alert rule's PromQL, for the card's graph; unset: deploy/'s rule


class Alerts(_Section):
    """Alertmanager cards: routing by label, runbook entries added or replaced, pacing."""

    routes: list[AlertRoute] = []
    runbook: dict[str, RunbookEntry] = {}
    messages_per_second: float = Field(1.0, gt=0, le=10)
    listed_on_card: int = Field(10, ge=1, le=40)
    gauge_cache_seconds: float = Field(5.0, ge=0, le=300)
    # unset: the largest notification deploy/ lets Alertmanager send (bot/alerts/webhook.py)
    max_notification_bytes: int | None = Field(None, ge=64 * 1024, le=1024 * 1024 * 1024)


class ChecklistItem(_Section):
    """A checklist step; `commands` become Run buttons, `marks` times acknowledge or mitigate."""

    title: str = Field(min_length=1, max_length=80)
    detail: str = ""
    commands: list[str] = []
    marks: Literal["", "acknowledge", "mitigate"] = ""


class Incidents(_Section):
    """Incidents: own channel or a thread, and checklists replacing the runbook's per severity."""

    channel_per_incident: bool = False
    checklists: dict[Literal["P0", "P1", "P2", "P3"], list[ChecklistItem]] = {}


class Replicas(_Section):
    """Running several replicas: the background lease, and how a replica drains on SIGTERM."""

    lease_seconds: float = Field(15.0, ge=1, le=300)
    deregister_seconds: float = Field(3.0, ge=0, le=60)
    drain_seconds: float = Field(20.0, ge=1, le=600)


class Approvals(_Section):
    """An approved execution's lease: renewed while it runs; the sweep finds lapsed ones."""

    lease_seconds: float = Field(60.0, ge=1, le=600)
    renew_seconds: float = Field(20.0, gt=0, le=300)
    sweep_seconds: float = Field(30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> Approvals:
        if self.renew_seconds >= self.lease_seconds:
            raise ValueError("renew_seconds must be shorter than lease_seconds")
        return self


class BreakGlass(_Section):
    """Who may run a destructive command from the terminal without a second approver."""

    users: list[str] = []  # Unix user names; empty: nobody

    @field_validator("users")
    @classmethod
    def _unix_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not UNIX_USER.match(name):
                raise ValueError(f"{name!r} is not a Unix user name")
        return names


class Graphs(_Section):
    """Pictures: on alert cards or not, and the finest step a range query asks Prometheus for."""

    alert_cards: bool = True
    sample_seconds: float = Field(15.0, ge=0.1, le=3600)  # Prometheus's scrape interval


class Timeouts(_Section):
    """Seconds each kind of backend call may take; all finite."""

    health_check: float = Field(2.0, gt=0, le=60)
    backend: float = Field(5.0, gt=0, le=300)
    slack: float = Field(10.0, gt=0, le=60)
    command: float = Field(60.0, gt=0, le=3600)


class Config(_Section):
    """The YAML config file; every key optional."""

    environment: Environment | None = None
    tenant_id: str = "forge-ops"
    roles: Roles = Roles()
    approvers: list[str] = []
    channels: Channels = Channels()
    queues: list[str] = ["email", "data-sync", "embeddings", "file-processing", "notifications"]
    queue_aliases: dict[str, str] = {"ai-processing": "embeddings", "reporting": "data-sync"}
    dlq: Dlq = Dlq()
    approval_ttl_minutes: int = Field(15, ge=1, le=1440)
    timeouts: Timeouts = Timeouts()
    backup: Backup = Backup()
    alerts: Alerts = Alerts()
    incidents: Incidents = Incidents()
    replicas: Replicas = Replicas()
    approvals: Approvals = Approvals()
    break_glass: BreakGlass = BreakGlass()
    graphs: Graphs = Graphs()

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, ids: list[str]) -> list[str]:
        return [_principal(i) for i in ids]

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, tenant: str) -> str:
        if tenant in REJECTED_TENANTS or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tenant):
            raise ValueError(
                f"{tenant!r} is rejected by ClientForge's tenant guard; use another value"
            )
        return tenant

    @field_validator("queues")
    @classmethod
    def _queues(cls, names: list[str]) -> list[str]:
        return [_queue(n) for n in names]

    @field_validator("queue_aliases")
    @classmethod
    def _aliases(cls, aliases: dict[str, str]) -> dict[str, str]:
        return {_queue(k): _queue(v) for k, v in aliases.items()}


def _principal(value: str) -> str:
    if not SLACK_PRINCIPAL.match(value):
        raise ValueError(f'{value!r} is not a Slack user or user-group ID (U…, W…, S…) or "*"')
    return value


def _channel(value: str) -> str:
    if not SLACK_CHANNEL.match(value):
        raise ValueError(f"{value!r} is not a Slack channel ID (C…, G…, D…)")
    return value


def _queue(value: str) -> str:
    if not QUEUE_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid queue name (lowercase letters, digits, - _ .; no ':')"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Environment and config file together, with the derived values."""

    env: Env
    config: Config
    config_path: Path | None = None

    @property
    def environment(self) -> str:
        """FORGE_ENVIRONMENT, else the config file's, else development."""
        return self.env.forge_environment or self.config.environment or "development"

    @property
    def state_database_url(self) -> str:
        """The bot's own PostgreSQL, DATABASE_URL unless set apart."""
        url = self.env.forge_state_database_url or self.env.database_url
        return url.get_secret_value()

    def secrets(self) -> list[str]:
        """Every secret value, so logs and replies can redact them verbatim."""
        values = [
            self.env.slack_bot_token,
            self.env.slack_signing_secret,
            self.env.slack_app_token,
            self.env.forge_alertmanager_token,
            self.env.forge_backup_s3_secret_access_key,
        ]
        urls = [self.env.database_url, self.env.redis_url, self.env.elasticsearch_url]
        urls += [self.env.forge_state_database_url] if self.env.forge_state_database_url else []
        passwords = [urlsplit(u.get_secret_value()).password for u in urls]
        known = [v.get_secret_value() for v in values if v] + [p for p in passwords if p]
        return [v for v in known if len(v) >= 6]


def load_config(path: Path, *, required: bool) -> Config:
    """Read and validate the YAML config; errors name the file and the bad key."""
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: config file not found (FORGE_CONFIG)")
        return Config()
    import yaml  # only when there is a file to read

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None


def _describe(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        message = (
            "unknown key"
            if err["type"] == "extra_forbidden"
            else err["msg"].removeprefix("Value error, ")
        )
        lines.append(f"{path}: {key or '(top level)'}: {message}")
    return "\n".join(lines)


def load_settings() -> Settings:
    """The environment and the config file it names, validated."""
    try:
        env = Env()
    except ValidationError as exc:
        raise ConfigError(_describe(Path("environment"), exc)) from None
    explicit = "FORGE_CONFIG" in os.environ
    return Settings(env, load_config(env.forge_config, required=explicit), env.forge_config)
