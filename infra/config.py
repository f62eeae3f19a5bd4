"""Deploy-time options, read once from CDK context (``cdk.json`` or ``-c key=value``).

Context given on the command line arrives as strings ("false", "2"), context from ``cdk.json`` as
JSON values; every option goes through one parser here so a typo fails the synth with the option's
name instead of deploying something unintended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from constructs import Construct

# The account/region used when no credentials are around (offline synth, tests, CI). cdk.json pins
# the availability zones for exactly this pair so synth never needs a lookup.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


class ContextError(ValueError):
    """A context option is present but malformed."""


@dataclass(frozen=True)
class DeployConfig:
    stage_name: str = "prod"
    # Protects the database from `cdk destroy` and console deletes; turn off for throwaway stacks.
    deletion_protection: bool = True
    db_multi_az: bool = True
    db_instance_class: str = "t4g.micro"
    db_allocated_storage_gb: int = 20
    db_max_allocated_storage_gb: int = 100
    db_backup_days: int = 7
    redis_node_type: str = "cache.t4g.small"
    # One replica gives a Multi-AZ failover target; 0 is a single node (dev stacks).
    redis_replicas: int = 1
    nat_gateways: int = 1
    jwt_issuer: str = "collab"
    jwt_audience: str = "collab-api"
    jwt_jwks_url: str | None = None
    # Origins allowed to call the HTTP API and open the WebSocket (checked in $connect when a
    # browser sends Origin). `*` is refused for the prod stage: give the front end's origins.
    cors_origins: tuple[str, ...] = ("http://localhost:8080", "http://127.0.0.1:8080")
    alarm_email: str | None = None
    # Steady-state requests per second and burst, per stage (API Gateway token bucket).
    ws_throttle_rate: int = 500
    ws_throttle_burst: int = 1000
    http_throttle_rate: int = 200
    http_throttle_burst: int = 400
    # API Gateway needs an account-level CloudWatch role before a WebSocket stage may log.
    manage_api_gateway_account: bool = True
    log_level: str = "INFO"
    # Reserved concurrency per function, sized from the stage throttles above (infra/functions.py,
    # reserved_concurrency): false for an account whose concurrency quota cannot spare it.
    reserved_concurrency: bool = True
    # Multiplier over rate x duration: 2 for the stages' bursts (twice their rate), 2 for a
    # dependency running at twice its usual latency (or a wave of cold starts).
    concurrency_headroom: int = 4
    # The account's Lambda concurrency quota in the region; Lambda keeps 100 of it unreserved.
    account_concurrency: int = 1000

    @property
    def jwt_authorizer_enabled(self) -> bool:
        """API Gateway's JWT authorizer needs an OIDC issuer; only configured for external IdPs."""
        return self.jwt_jwks_url is not None


# context key -> (field, parser)
def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ContextError(f"context {name}: expected true or false, got {value!r}")


def _int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ContextError(f"context {name}: expected an integer, got {value!r}") from None
    if number < 0:
        raise ContextError(f"context {name}: must not be negative")
    return number


def _str(name: str, value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ContextError(f"context {name}: must not be empty")
    return text


def _origins(name: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    origins = tuple(str(o).strip() for o in items if str(o).strip())
    if not origins:
        raise ContextError(f"context {name}: give at least one origin")
    return origins


_OPTIONS: dict[str, tuple[str, Any]] = {
    "stageName": ("stage_name", _str),
    "deletionProtection": ("deletion_protection", _bool),
    "dbMultiAz": ("db_multi_az", _bool),
    "dbInstanceClass": ("db_instance_class", _str),
    "dbAllocatedStorage": ("db_allocated_storage_gb", _int),
    "dbMaxAllocatedStorage": ("db_max_allocated_storage_gb", _int),
    "dbBackupDays": ("db_backup_days", _int),
    "redisNodeType": ("redis_node_type", _str),
    "redisReplicas": ("redis_replicas", _int),
    "natGateways": ("nat_gateways", _int),
    "jwtIssuer": ("jwt_issuer", _str),
    "jwtAudience": ("jwt_audience", _str),
    "jwtJwksUrl": ("jwt_jwks_url", _str),
    "corsOrigins": ("cors_origins", _origins),
    "alarmEmail": ("alarm_email", _str),
    "wsThrottleRate": ("ws_throttle_rate", _int),
    "wsThrottleBurst": ("ws_throttle_burst", _int),
    "httpThrottleRate": ("http_throttle_rate", _int),
    "httpThrottleBurst": ("http_throttle_burst", _int),
    "manageApiGatewayAccount": ("manage_api_gateway_account", _bool),
    "logLevel": ("log_level", _str),
    "reservedConcurrency": ("reserved_concurrency", _bool),
    "concurrencyHeadroom": ("concurrency_headroom", _int),
    "accountConcurrency": ("account_concurrency", _int),
}


def load_config(scope: Construct) -> DeployConfig:
    """Build :class:`DeployConfig` from the construct tree's context; unknown keys are ignored."""
    values: dict[str, Any] = {}
    for key, (field, parse) in _OPTIONS.items():
        raw = scope.node.try_get_context(key)
        if raw is None or raw == "":
            continue
        values[field] = parse(key, raw)
    config = DeployConfig(**values)
    _check(config)
    return config


def _check(config: DeployConfig) -> None:
    if not 1 <= config.nat_gateways <= 2:
        # Lambdas reach the Management API and Secrets Manager only through NAT: 0 breaks them.
        raise ContextError("context natGateways: must be 1 or 2 (the VPC spans two zones)")
    if "*" in config.cors_origins and config.stage_name == "prod":
        raise ContextError("context corsOrigins: `*` is not allowed for the prod stage; list the origins")
    if config.redis_replicas > 5:
        raise ContextError("context redisReplicas: ElastiCache allows at most 5 replicas")
    if config.db_backup_days < 1:
        raise ContextError("context dbBackupDays: backups must stay on (1..35 days)")
    if config.jwt_jwks_url is not None:
        for name, url in (("jwtJwksUrl", config.jwt_jwks_url), ("jwtIssuer", config.jwt_issuer)):
            if urlsplit(url).scheme != "https":
                raise ContextError(
                    f"context {name}: with a JWKS URL the issuer must be an https OIDC issuer, got {url!r}"
                )
    if config.concurrency_headroom < 1:
        raise ContextError("context concurrencyHeadroom: at least 1 (rate x duration, no margin)")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ContextError("context logLevel: one of DEBUG, INFO, WARNING, ERROR")
