import json

import pytest

from collab.config import load_settings
from collab.errors import ConfigError

BASE = {"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/0", "JWT_SECRET": "s" * 32}


def test_defaults_follow_the_contract():
    s = load_settings(BASE)
    assert (s.jwt_issuer, s.jwt_audience, s.redis_cluster) == ("collab", "collab-api", False)
    assert s.connections_endpoint is None and s.jwt_jwks_url is None
    assert s.dsn == BASE["DATABASE_URL"] and s.jwt_key == "s" * 32


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"REDIS_URL": None}, "REDIS_URL: is required"),
        ({"DATABASE_URL": None}, "DATABASE_URL"),
        ({"JWT_SECRET": None}, "JWT_SECRET"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL: must be"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be"),
        ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
        ({"CONNECTIONS_ENDPOINT": "not a url"}, "CONNECTIONS_ENDPOINT"),
        ({"JWT_JWKS_URL": "ftp:/x"}, "JWT_JWKS_URL"),
    ],
)
def test_missing_or_malformed_variable_names_it(change, named):
    env = {**BASE, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    assert named in exc.value.message
    assert "\n" not in exc.value.message


def test_cluster_flag():
    assert load_settings({**BASE, "REDIS_CLUSTER": "1"}).redis_cluster is True
    assert load_settings({**BASE, "REDIS_CLUSTER": "0"}).redis_cluster is False


def test_secrets_come_from_secrets_manager_once_per_container():
    calls = []
    secret = {"username": "app", "password": "p@ss/word", "port": 5432, "dbname": "collab"}

    def fetch(arn):
        calls.append(arn)
        return json.dumps(secret) if "db" in arn else "jwt-from-sm"

    env = {
        "REDIS_URL": "rediss://cache:6379",
        "DB_SECRET_ARN": "arn:db",
        "DB_HOST": "proxy.local",
        "JWT_SECRET_ARN": "arn:jwt",
    }
    s = load_settings(env, secrets=fetch)
    assert calls == []  # nothing fetched until a route needs it
    assert s.dsn == "postgresql://app:p%40ss%2Fword@proxy.local:5432/collab?sslmode=require"
    assert s.dsn and s.jwt_key == "jwt-from-sm" and s.jwt_key
    assert calls == ["arn:db", "arn:jwt"]


def test_secrets_manager_through_moto():
    import boto3
    from moto import mock_aws

    from collab import config

    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arn = sm.create_secret(Name="jwt", SecretString="from-moto")["ARN"]
        config._sm_client = None
        s = load_settings(
            {"REDIS_URL": "redis://h", "DATABASE_URL": "postgresql://h/d", "JWT_SECRET_ARN": arn}
        )
        import os

        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        assert s.jwt_key == "from-moto"
        config._sm_client = None


def test_the_contracts_configuration_table_lists_exactly_what_the_settings_model_reads():
    import re
    from pathlib import Path

    from collab.config import ENV, Settings

    contract = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text(encoding="utf-8")
    section = contract.split("## 2. Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])]
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert set(listed) == set(ENV.values())
    # ... and every setting comes from a variable (``secrets`` is the tests' fetcher, not configuration).
    assert set(Settings.model_fields) - {"secrets"} == set(ENV)
