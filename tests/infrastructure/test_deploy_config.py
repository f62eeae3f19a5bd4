"""Deploy options from CDK context: strings from `-c`, JSON from cdk.json, clear errors for typos."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra.app import validation_enabled
from infra.config import ContextError, DeployConfig, load_config
from infra.functions import FUNCTIONS, check_concurrency_budget, reserved_concurrency

pytestmark = [pytest.mark.infra]

ROOT = Path(__file__).resolve().parents[2]


def config_from(context: dict) -> DeployConfig:
    return load_config(cdk.App(context=context))


def test_defaults_are_the_production_shape() -> None:
    config = config_from({})
    assert config.deletion_protection and config.db_multi_az and config.redis_replicas == 1
    assert not config.jwt_authorizer_enabled


def test_command_line_strings_are_parsed() -> None:
    config = config_from(
        {
            "deletionProtection": "false",
            "redisReplicas": "0",
            "corsOrigins": "https://a.example,https://b.example",
        }
    )
    assert config.deletion_protection is False
    assert config.redis_replicas == 0
    assert config.cors_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"deletionProtection": "maybe"}, "deletionProtection"),
        ({"redisReplicas": "two"}, "redisReplicas"),
        ({"natGateways": "0"}, "natGateways"),
        ({"jwtJwksUrl": "https://idp.example/jwks.json"}, "jwtIssuer"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"concurrencyHeadroom": "0"}, "concurrencyHeadroom"),
        ({"reservedConcurrency": "some"}, "reservedConcurrency"),
        ({"corsOrigins": "*"}, "corsOrigins"),  # no wildcard in production (issue 13)
        ({"corsOrigins": ["https://a.example", "*"]}, "corsOrigins"),
    ],
)
def test_bad_values_name_the_option(context: dict, message: str) -> None:
    with pytest.raises(ContextError, match=message):
        config_from(context)


def test_cdk_json_pins_the_zones_of_the_default_environment() -> None:
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert cdk_json["app"].endswith("infra/app.py")
    zones = cdk_json["context"]["availability-zones:account=123456789012:region=us-east-1"]
    assert zones == ["us-east-1a", "us-east-1b"]
    config_from(cdk_json["context"])  # every option in cdk.json parses


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("false", False), ("0", False), (None, True)]
)
def test_cdk_validation_switch(value: str | None, expected: bool) -> None:
    env = {} if value is None else {"CDK_VALIDATION": value}
    assert validation_enabled(env) is expected


def test_reserved_concurrency_is_rate_times_duration_times_headroom() -> None:
    config = config_from({})
    # 500 WebSocket requests/s x 50 ms x 4 = 100; 200 HTTP requests/s x 50 ms x 4 = 40
    assert reserved_concurrency("connect", config) == 100
    assert reserved_concurrency("api", config) == 40
    assert reserved_concurrency("sweeper", config) == reserved_concurrency("migrate", config) == 1
    # fan-out chunks arrive at most at the WebSocket stage's rate: 500/s x 20 ms x 4 = 40
    assert reserved_concurrency("fanout", config) == 40
    assert check_concurrency_budget(config) == 428  # the functions plus CDK's provider framework


def test_a_small_account_scales_the_reservations_down_or_turns_them_off() -> None:
    small = config_from({"wsThrottleRate": "50", "httpThrottleRate": "20", "accountConcurrency": "200"})
    assert reserved_concurrency("connect", small) == 10
    assert reserved_concurrency("heartbeat", small) == 2  # never below 2
    assert check_concurrency_budget(small) <= 100
    with pytest.raises(ContextError, match="reservedConcurrency=false"):
        check_concurrency_budget(config_from({"accountConcurrency": "400"}))
    off = config_from({"reservedConcurrency": "false", "accountConcurrency": "10"})
    assert check_concurrency_budget(off) == 0
    assert all(reserved_concurrency(name, off) is None for name in FUNCTIONS)


def test_a_wildcard_origin_is_allowed_for_other_stages_only() -> None:
    assert config_from({"stageName": "dev", "corsOrigins": "*"}).cors_origins == ("*",)
    assert "*" not in json.loads((ROOT / "cdk.json").read_text())["context"]["corsOrigins"]
