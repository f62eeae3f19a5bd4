"""Redis and Postgres that speak only TLS, on loopback, with certificates of a local CA: what a
cold ``$connect`` meets in AWS (ElastiCache with in-transit encryption, RDS Proxy with TLS required).

Used by ``python -m bench.coldstart --aws``. Postgres is a throwaway cluster of the machine's
Postgres (``/usr/lib/postgresql/*/bin``), initialised as the ``postgres`` user when run as root.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench.tls_endpoint import LocalCa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tls_redis(folder: Path, ca: LocalCa) -> Iterator[tuple[str, str]]:
    """(rediss:// URL, AUTH password) of a redis-server with only its TLS port open."""
    port, password = free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(ca.cert_file), "--tls-key-file", str(ca.key_file),
            "--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no",
            "--dir", str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        yield f"rediss://127.0.0.1:{port}/0", password
    finally:
        proc.terminate()
        proc.wait(10)


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise SystemExit("no Postgres under /usr/lib/postgresql: apt-get install postgresql")
    return versions[-1]


@contextlib.contextmanager
def tls_postgres(folder: Path, ca: LocalCa) -> Iterator[int]:
    """The port of a Postgres cluster that accepts only TLS (hostssl) connections on 127.0.0.1,
    trust authentication (the benchmark measures TLS, not SCRAM), user ``postgres``."""
    bin_dir, port = _pg_bin(), free_port()
    data = folder / "pgdata"
    as_postgres: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("server.pem", "server.key"):
        shutil.copyfile(ca.cert_file if name.endswith("pem") else ca.key_file, folder / name)
    (folder / "server.key").chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for name in ("server.pem", "server.key"):
            shutil.chown(folder / name, "postgres")
    run = [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{folder}'\n"
            f"ssl = on\nssl_cert_file = '{folder / 'server.pem'}'\nssl_key_file = '{folder / 'server.key'}'\n"
            "fsync = off\n"
        )
    pg_ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "pg.log")]
    subprocess.run([*pg_ctl, "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield port
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, stdout=subprocess.DEVNULL)


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")
