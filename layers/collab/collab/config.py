"""Configuration (contract section 2): one pydantic model, read once per cold start.

Values come from the environment. In AWS the stack passes ARNs instead of secrets
(``DB_SECRET_ARN`` + ``DB_HOST``, ``JWT_SECRET_ARN``, ``REDIS_AUTH_SECRET_ARN``); those are fetched from
Secrets Manager (one signed POST, no boto3: :mod:`collab.adapters.secrets_manager`) the first time a
route needs them and cached for 5 minutes, so a route that never touches Postgres never pays for
the secret, and a rotation is picked up by running containers.

A missing or malformed variable raises :class:`ConfigError` at cold start with one message naming it.
"""

from __future__ import annotations

import hashlib
import hmac
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
    "fanout_warm_connections": "FANOUT_WARM_CONNECTIONS",
    "websocket_url": "WEBSOCKET_URL",
    "db_sslrootcert": "DB_SSLROOTCERT",
    "cors_origins": "CORS_ORIGINS",
    "webhook_queue_url": "WEBHOOK_QUEUE_URL",
    "sqs_endpoint_url": "SQS_ENDPOINT_URL",
    "webhook_allow_loopback": "WEBHOOK_ALLOW_LOOPBACK",
    "webhook_timeout_s": "WEBHOOK_TIMEOUT_S",
    "workspace_budget_usd": "WORKSPACE_BUDGET_USD",
    "fanout_function": "FANOUT_FUNCTION",
    "lambda_endpoint_url": "LAMBDA_ENDPOINT_URL",
}

# Where libpq finds the CAs that RDS Proxy's certificate chains to (Amazon's root CAs, in every
# standard trust store): the bundle Python's OpenSSL uses, found the way it finds it. libpq 16+ also
# understands sslrootcert=system, but a wheel's bundled OpenSSL may look in its build-time
# directory, not the system's, so the file is named explicitly when there is one.
_CA_BUNDLES = (
    "/etc/pki/tls/certs/ca-bundle.crt",  # Amazon Linux 2023 (the Lambda Python runtimes)
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


def system_ca_bundle() -> str:
    import ssl

    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile, *_CA_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return candidate
    return "system"


# The hard ceiling of a workspace's members: the CHECK on workspaces.member_count (migration 0006).
MEMBERS_CEILING = 1000


class Limits(BaseModel):
    """Every limit that holds under abuse, in one place (docs/hardening.md has the table and the
    reasons). Each can be set by ``LIMIT_<NAME>`` (``LIMIT_FRAMES_PER_MINUTE=200``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Every frame that reaches $default, valid or not, counts: each is a Lambda invocation (contract 3.2).
    frames_per_minute: int = Field(default=100, ge=1)
    # Per connection; a client sends one every 30 s, so 10 leaves room for reconnects and retries.
    heartbeats_per_minute: int = Field(default=10, ge=1)
    # v1.3: presence.update frames that carry `editing`, per user: typing refreshes its indicator
    # every 5 s (12 a minute per field), so this is room for field switches, not for a flood.
    editing_per_minute: int = Field(default=60, ge=1)
    # Frames refused over budget in one window before the connection is closed.
    refusals_before_close: int = Field(default=20, ge=1)
    connect_attempts_per_minute: int = Field(default=30, ge=1)
    # Live connections: each is a fan-out target of every edit of its workspace.
    connections_per_user_workspace: int = Field(default=10, ge=1)
    connections_per_workspace: int = Field(default=500, ge=1)
    # Members of one workspace: every edit is posted to each of them. Past 100 live members the fan-out is
    # split across invocations (collab.domain.fanout); 1,000 is the database's own ceiling (migration 0006).
    members_per_workspace: int = Field(default=50, ge=1, le=MEMBERS_CEILING)
    # HTTP writes (POST, PATCH, PUT, DELETE) per user, besides the stage-wide throttle.
    http_writes_per_minute: int = Field(default=120, ge=1)
    workspaces_per_user: int = Field(default=100, ge=1)
    # Activity and notifications older than this are pruned (the sweeper's schedule).
    retention_days: int = Field(default=90, ge=1)
    # Request ledger rows (exactly-once answers) are kept this long; the contract promises 1 h.
    ledger_retention_hours: int = Field(default=24, ge=1)


LIMIT_ENV_PREFIX = "LIMIT_"
# Secrets read from Secrets Manager are read again after this long: a rotation reaches every warm
# container within 5 minutes (issue 22 replaces this with its TTL cache of every secret).


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
    # TLS connections to the Management API a posting function opens during its init, when
    # CONNECTIONS_ENDPOINT is https (collab.ws.message.prepare): its first fan-out finds them ready.
    fanout_warm_connections: int = Field(default=25, ge=0, le=32)
    # Public WebSocket URL handed out with tickets (POST /ws-tickets); the stack sets it.
    websocket_url: str | None = None
    # CA bundle to verify the database's certificate with (sslmode=verify-full); default: the
    # system's (RDS Proxy's certificates chain to Amazon's root CAs).
    db_sslrootcert: str | None = None
    # Comma-separated origins a browser may connect from ($connect checks Origin when it is set);
    # unset or `*`: any. The stack passes its corsOrigins context.
    cors_origins: str | None = None
    limits: Limits = Limits()

    # Webhooks (docs/operations.md): the SQS FIFO queue (unset: webhooks are not enqueued, the
    # scheduled tick still delivers), moto's endpoint under collab dev, and whether http:// and
    # loopback receivers are allowed (collab dev only: everything else is the SSRF rules).
    webhook_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    webhook_allow_loopback: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=30)
    # Each workspace's monthly budget (docs/operations.md, usage); over it, presence is throttled.
    workspace_budget_usd: float | None = Field(default=None, ge=0)
    # Large fan-outs (collab.domain.fanout): the function that posts a chunk of one, invoked
    # asynchronously (unset: every fan-out is posted by the invocation that made the event), and the
    # Invoke API's endpoint when it is not AWS's (the local gateway under collab dev).
    fanout_function: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_:.-]{1,140}$")
    lambda_endpoint_url: str | None = None
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

    @field_validator("connections_endpoint", "jwt_jwks_url", "websocket_url", "lambda_endpoint_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
                raise ValueError("must be an absolute URL")
        return v

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a browser's ``Origin`` may connect (no Origin: not a browser, nothing to check)."""
        if not origin or not self.cors_origins:
            return True
        allowed = {o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()}
        return "*" in allowed or origin.strip().rstrip("/") in allowed

    @model_validator(mode="after")
    def _sources(self) -> Settings:
        if not self.database_url and not (self.db_secret_arn and self.db_host):
            raise ValueError("DATABASE_URL is required (or DB_SECRET_ARN with DB_HOST)")
        if not self.jwt_secret and not self.jwt_secret_arn:
            raise ValueError("JWT_SECRET is required (or JWT_SECRET_ARN)")
        return self

    # Resolved values: secrets are fetched on first use and cached for 5 minutes (rotations).
    @property
    def dsn(self) -> str:
        """The libpq URL. From the secret: ``sslmode=verify-full`` against the system's CAs (RDS
        Proxy's certificate is checked, not only encrypted), and the runtime role's timeouts come
        with the role itself (``ALTER ROLE ... SET``, migration 0002)."""
        if self.database_url:
            return self.database_url
        secret = json.loads(self._secret(self.db_secret_arn))
        user = quote(secret["username"], safe="")
        password = quote(secret["password"], safe="")
        port = secret.get("port", 5432)
        dbname = secret.get("dbname") or self.db_name
        host = self.db_host
        root = quote(self.db_sslrootcert or system_ca_bundle(), safe="/")
        return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=verify-full&sslrootcert={root}"

    @property
    def jwt_key(self) -> str:
        """The HS256 secret of access tokens. From Secrets Manager it is read again once the cached
        value is 5 minutes old, so a rotated secret is picked up by warm containers (docs/deploy.md)."""
        if self.jwt_secret:
            return self.jwt_secret.get_secret_value()
        return self._secret(self.jwt_secret_arn)

    @property
    def ticket_key(self) -> str:
        """The key that signs WebSocket tickets: derived from the secret with its own label (HMAC),
        so a ticket is never a valid access token's signature and the two can be told apart."""
        return hmac.new(self.jwt_key.encode(), b"collab websocket tickets v1", hashlib.sha256).hexdigest()

    @property
    def redis_password(self) -> str | None:
        if not self.redis_auth_secret_arn:
            return None
        raw = self._secret(self.redis_auth_secret_arn)
        try:
            return str(json.loads(raw)["password"])
        except (ValueError, KeyError, TypeError):
            return raw

    @cached_property
    def _secret_cache(self) -> Any:
        from collab.adapters.secrets_manager import SecretCache

        return SecretCache(self.secrets)

    def _secret(self, arn: str | None) -> str:
        assert arn
        return str(self._secret_cache.get(arn))


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
    limits = {
        name: env[var]
        for name in Limits.model_fields
        if (var := LIMIT_ENV_PREFIX + name.upper()) in env and env[var] != ""
    }
    if limits:
        raw["limits"] = limits
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
    loc: tuple[Any, ...] = tuple(first.get("loc") or ())
    field = str(loc[0]) if loc else ""
    var = ENV.get(field)
    if field == "limits" and len(loc) > 1:
        var = LIMIT_ENV_PREFIX + str(loc[1]).upper()
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
