"""Configuration (contract section 2): one pydantic model, read once per cold start.

Values come from the environment. In AWS the stack passes ARNs instead of secrets
(``DB_SECRET_ARN`` + ``DB_HOST``, ``JWT_SECRET_ARN``, ``REDIS_AUTH_SECRET_ARN``); those are fetched from
Secrets Manager the first time a route needs them and cached for the life of the container, so a
route that never touches Postgres never pays for boto3 or the secret.

A missing or malformed variable raises :class:`ConfigError` at cold start with one message naming it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collab.errors import ConfigError

# Environment variable names, in one place.
ENV = {
    "database_url": "DATABASE_URL",
    "db_secret_arn": "DB_SECRET_ARN",
    "db_host": "DB_HOST",
    "db_name": "DB_NAME",
    "redis_url": "REDIS_URL",
    "redis_cluster": "REDIS_CLUSTER",
    "redis_auth_secret_arn": "REDIS_AUTH_SECRET_ARN",
    "jwt_secret": "JWT_SECRET",
    "jwt_secret_arn": "JWT_SECRET_ARN",
    "jwt_issuer": "JWT_ISSUER",
    "jwt_audience": "JWT_AUDIENCE",
    "jwt_jwks_url": "JWT_JWKS_URL",
    "connections_endpoint": "CONNECTIONS_ENDPOINT",
    "websocket_url": "WEBSOCKET_URL",
    "webhook_queue_url": "WEBHOOK_QUEUE_URL",
    "sqs_endpoint_url": "SQS_ENDPOINT_URL",
    "webhook_allow_loopback": "WEBHOOK_ALLOW_LOOPBACK",
    "webhook_timeout_s": "WEBHOOK_TIMEOUT_S",
    "workspace_budget_usd": "WORKSPACE_BUDGET_USD",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", arbitrary_types_allowed=True)

    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_name: str = "collab"
    redis_url: str
    redis_cluster: bool = False
    redis_auth_secret_arn: str | None = None
    jwt_secret: SecretStr | None = None
    jwt_secret_arn: str | None = None
    jwt_issuer: str = "collab"
    jwt_audience: str = "collab-api"
    jwt_jwks_url: str | None = None
    connections_endpoint: str | None = None
    # Public WebSocket URL handed out with tickets (POST /ws-tickets); the stack sets it.
    websocket_url: str | None = None
    # Webhooks (docs/operations.md): the SQS FIFO queue (unset: webhooks are not enqueued, the
    # scheduled tick still delivers), moto's endpoint under collab dev, and whether http:// and
    # loopback receivers are allowed (collab dev only: everything else is the SSRF rules).
    webhook_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    webhook_allow_loopback: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=30)
    # Each workspace's monthly budget (docs/operations.md, usage); over it, presence is throttled.
    workspace_budget_usd: float | None = Field(default=None, ge=0)
    secrets: Any = Field(default=None, exclude=True)

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("connections_endpoint", "jwt_jwks_url", "websocket_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
                raise ValueError("must be an absolute URL")
        return v

    @model_validator(mode="after")
    def _sources(self) -> Settings:
        if not self.database_url and not (self.db_secret_arn and self.db_host):
            raise ValueError("DATABASE_URL is required (or DB_SECRET_ARN with DB_HOST)")
        if not self.jwt_secret and not self.jwt_secret_arn:
            raise ValueError("JWT_SECRET is required (or JWT_SECRET_ARN)")
        return self

    # Resolved values: secrets are fetched on first use and cached for the container's life.
    @cached_property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        secret = json.loads(self._secret(self.db_secret_arn))
        user = quote(secret["username"], safe="")
        password = quote(secret["password"], safe="")
        port = secret.get("port", 5432)
        dbname = secret.get("dbname") or self.db_name
        return f"postgresql://{user}:{password}@{self.db_host}:{port}/{dbname}?sslmode=require"

    @cached_property
    def jwt_key(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret.get_secret_value()
        return self._secret(self.jwt_secret_arn)

    @cached_property
    def redis_password(self) -> str | None:
        if not self.redis_auth_secret_arn:
            return None
        raw = self._secret(self.redis_auth_secret_arn)
        try:
            return str(json.loads(raw)["password"])
        except (ValueError, KeyError, TypeError):
            return raw

    def _secret(self, arn: str | None) -> str:
        assert arn
        fetch = self.secrets or _secrets_manager_fetch
        return str(fetch(arn))


_sm_client: Any = None
_sm_lock = threading.Lock()


def _secrets_manager_fetch(arn: str) -> str:
    """Read a secret string from Secrets Manager (boto3 is imported only here, on first need)."""
    global _sm_client
    with _sm_lock:
        if _sm_client is None:
            import boto3

            _sm_client = boto3.client("secretsmanager")
    return str(_sm_client.get_secret_value(SecretId=arn)["SecretString"])


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment; explicit keyword arguments win."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field, var in ENV.items():
        value = env.get(var)
        if value not in (None, ""):
            raw[field] = value
    if "redis_cluster" in raw:
        flag = raw["redis_cluster"].strip().lower()
        if flag not in ("0", "1", "true", "false"):
            raise ConfigError("REDIS_CLUSTER: must be 0 or 1")
        raw["redis_cluster"] = flag in ("1", "true")
    raw.update(overrides)
    try:
        return Settings(**raw)
    except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError -> one line naming the variable
        raise ConfigError(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid configuration: {exc}"
    first = errors()[0]
    loc = first.get("loc") or ()
    field = str(loc[0]) if loc else ""
    var = ENV.get(field)
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "missing" and var:
        return f"{var}: is required"
    return f"{var}: {msg}" if var else msg


_settings: Settings | None = None
_settings_lock = threading.Lock()


def get_settings() -> Settings:
    """The container's settings, read once."""
    global _settings
    if _settings is None:
        with _settings_lock:
            if _settings is None:
                _settings = load_settings()
    return _settings


def reset_settings() -> None:
    """Forget cached settings (tests and the local gateway, after changing the environment)."""
    global _settings
    _settings = None
