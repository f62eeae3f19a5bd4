import json
import time

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
        ({"LIMIT_MEMBERS_PER_WORKSPACE": "1001"}, "LIMIT_MEMBERS_PER_WORKSPACE"),
        ({"LIMIT_MEMBERS_PER_WORKSPACE": "0"}, "LIMIT_MEMBERS_PER_WORKSPACE"),
        ({"FANOUT_FUNCTION": "not a name!"}, "FANOUT_FUNCTION"),
        ({"LAMBDA_ENDPOINT_URL": "lambda"}, "LAMBDA_ENDPOINT_URL"),
    ],
)
def test_missing_or_malformed_variable_names_it(change, named):
    env = {**BASE, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    assert named in exc.value.message
    assert "\n" not in exc.value.message


def test_the_member_cap_is_50_unless_set_and_at_most_1000():
    assert load_settings(BASE).limits.members_per_workspace == 50
    assert load_settings({**BASE, "LIMIT_MEMBERS_PER_WORKSPACE": "1000"}).limits.members_per_workspace == 1000
    assert load_settings(BASE).fanout_function is None  # large fan-outs posted inline unless set


def test_cluster_flag():
    assert load_settings({**BASE, "REDIS_CLUSTER": "1"}).redis_cluster is True
    assert load_settings({**BASE, "REDIS_CLUSTER": "0"}).redis_cluster is False


def test_secrets_come_from_secrets_manager_on_first_use_and_are_cached():
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
        "DB_SSLROOTCERT": "/etc/ssl/ca.pem",
    }
    s = load_settings(env, secrets=fetch)
    assert calls == []  # nothing fetched until a route needs it
    assert s.dsn == (
        "postgresql://app:p%40ss%2Fword@proxy.local:5432/collab?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem"
    )
    assert s.dsn and s.jwt_key == "jwt-from-sm" and s.jwt_key
    assert calls == ["arn:db", "arn:jwt"]


def test_the_certificate_is_verified_against_the_system_trust_store_by_default():
    env = {"REDIS_URL": "redis://h", "DB_SECRET_ARN": "arn:db", "DB_HOST": "proxy", "JWT_SECRET": "s" * 32}
    s = load_settings(env, secrets=lambda arn: json.dumps({"username": "u", "password": "p"}))
    assert "sslmode=verify-full&sslrootcert=" in s.dsn
    root = s.dsn.rsplit("sslrootcert=", 1)[1]
    assert root == "system" or root.endswith((".crt", ".pem"))


def test_a_rotated_secret_is_seen_once_the_cache_expires():
    from collab.adapters.secrets_manager import SecretCache

    values = iter(["old", "new"])
    cache = SecretCache(lambda arn: next(values), ttl=0.05)
    assert cache.get("arn:jwt") == "old" and cache.get("arn:jwt") == "old"
    time.sleep(0.06)
    assert cache.get("arn:jwt") == "new" and cache.fetches == 2


def test_get_secret_value_without_boto3_against_moto_server(monkeypatch):
    """The signed JSON POST is what Secrets Manager (here moto's server) understands."""
    import boto3
    from moto.server import ThreadedMotoServer

    from collab.adapters import secrets_manager

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=url)
        arn = sm.create_secret(Name="jwt", SecretString="from-moto")["ARN"]
        s = load_settings(
            {"REDIS_URL": "redis://h", "DATABASE_URL": "postgresql://h/d", "JWT_SECRET_ARN": arn}
        )
        assert s.jwt_key == "from-moto"
        with pytest.raises(Exception, match=r"400|ResourceNotFound"):
            secrets_manager.get_secret_value(arn + "-missing")
    finally:
        server.stop()


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
    # (``limits`` come from ``LIMIT_<NAME>`` variables, one row of the table.)
    assert set(Settings.model_fields) - {"secrets", "limits"} == set(ENV)
    assert "| `LIMIT_<NAME>`" in section
