"""Test harness: real Postgres and Redis.

``DATABASE_URL`` / ``REDIS_URL`` when set (CI and this machine); otherwise embedded ones started
under a temporary folder, so ``make test`` passes on a fresh machine. Each xdist worker gets its own
database (created and migrated once) and its own Redis database index; every test that asks for
``clean`` (directly or through ``rt``) starts from empty tables and an empty Redis.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests draw new examples on every run, so a developer's `make test` keeps exploring (and
# keeps what fails in .hypothesis/). CI gates a landing: `.ci/run` selects the "ci" profile, the
# same examples every run, so that a failure there is the change's and not a lucky draw.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TEST_JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def _worker_index(config: pytest.Config) -> int:
    wid = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    m = re.search(r"(\d+)$", wid)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="session")
def service_urls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    import psycopg

    from collab.adapters.postgres.migrate import migrate
    from collab_dev import embedded as emb

    embedded = None
    base_db = os.environ.get("DATABASE_URL")
    base_redis = os.environ.get("REDIS_URL")
    if not base_db or not base_redis:
        from collab_dev import embedded as emb

        # not pytest's tmp dir: it is 0700, and pgserver (as root) runs initdb as its own user
        root = Path(tempfile.mkdtemp(prefix="collab-test-services-"))
        root.chmod(0o755)
        if not base_db:
            base_db, pg = emb.start_postgres(Path(root))
        if not base_redis:
            base_redis, rl = emb.start_redis(Path(root))
        embedded = (locals().get("pg"), locals().get("rl"), root)

    idx = _worker_index(request.config)
    dbname = f"collab_test_{idx}_{uuid.uuid4().hex[:8]}"
    created = False
    db_url = base_db  # a role that may not create databases tests in the one it is given
    for attempt in range(50):
        try:
            with psycopg.connect(base_db, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{dbname}"')
            created = True
            db_url = _with_dbname(base_db, dbname)
            break
        except psycopg.errors.ObjectInUse:
            # "template1 is being accessed by other users": another suite on this machine is creating
            # its own database at this moment. Wait and try again, never fall back to a shared one.
            time.sleep(0.05 + 0.05 * attempt * random.random())
        except psycopg.Error:
            break
    migrate(db_url)

    redis_url, lock = base_redis, None
    if redis_url.startswith(("redis://", "rediss://")):
        db_index, lock = _claim_redis_db()
        redis_url = re.sub(r"(/\d+)?$", f"/{db_index}", redis_url.split("?")[0], count=1)
    yield {"DATABASE_URL": db_url, "REDIS_URL": redis_url}
    if lock is not None:
        lock.close()

    if created:
        with psycopg.connect(base_db, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    if embedded:
        pg, rl, root = embedded
        if rl is not None:
            rl.shutdown(nosave=True)
        if pg is not None:
            emb.stop_postgres(pg)
        shutil.rmtree(root, ignore_errors=True)


def _claim_redis_db() -> tuple[int, Any]:
    """A Redis database index (1-14) no other test process on this machine is using: tests FLUSHDB
    it, so two sessions (or xdist workers) must never share one. Held until the file is closed."""
    import fcntl

    for index in range(1, 15):  # 15 is the benchmarks'
        fh = open(Path(tempfile.gettempdir()) / f"collab-test-redis-db-{index}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return index, fh
    raise RuntimeError("all Redis test databases 1-14 are in use by other test processes")


def _with_dbname(url: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, f"/{dbname}", u.query, u.fragment))


@pytest.fixture(scope="session")
def settings(service_urls: dict[str, str]) -> Any:
    from collab.config import load_settings

    return load_settings(
        {
            **service_urls,
            "JWT_SECRET": TEST_JWT_SECRET,
            "CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/unused",
            "WEBSOCKET_URL": "wss://ws.example.test/prod",
        }
    )


TABLES = "notifications, activity, tasks, workspace_members, workspaces, users, request_ledger, used_tickets, revocations"


@pytest.fixture
def clean(settings: Any) -> None:
    import psycopg
    import redis

    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE")
    r = redis.Redis.from_url(settings.redis_url)
    r.flushdb()
    r.close()


@pytest.fixture
def clock() -> Any:
    from collab.clock import ManualClock

    return ManualClock()


@pytest.fixture
def rt(settings: Any, clean: None, clock: Any) -> Iterator[Any]:
    """A fresh runtime over the real services, installed as the container's runtime."""
    from collab import runtime

    r = runtime.Runtime(settings, clock=clock)
    runtime.install(r)
    yield r
    runtime.install(None)
    if "db" in r.__dict__:
        r.db.close()
