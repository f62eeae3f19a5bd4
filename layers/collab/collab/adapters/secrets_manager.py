"""Secrets Manager's ``GetSecretValue`` without boto3, and a cache that notices rotations.

Why not boto3: a cold ``$connect`` paid ~200-350 ms to import it and build a client, for two calls.
``GetSecretValue`` is one JSON POST (``X-Amz-Target: secretsmanager.GetSecretValue``) signed with
SigV4, which :mod:`collab.adapters.apigw.sigv4` already does (tested against botocore's signer), sent
over ``http.client`` with the standard trust store. The endpoint is
``https://secretsmanager.{AWS_REGION}.amazonaws.com``, or ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (the
variable the AWS SDKs read; a local stand-in in benchmarks). Credentials are the function role's,
from the environment, as Lambda sets them.

Values are cached for :data:`TTL_S` (5 minutes), not for the container's life: a rotated secret is
picked up within that, and a container that runs for hours keeps working after a rotation.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from collab.adapters.apigw import sigv4
from collab.errors import ConfigError, Unavailable

TTL_S = 300.0  # a rotation is seen within 5 minutes
TIMEOUT_S = 3.0  # connect + answer; Secrets Manager answers in tens of ms


def _endpoint() -> tuple[str, str, int, bool]:
    """(region, host, port, tls) of Secrets Manager."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    url = (
        os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or f"https://secretsmanager.{region}.amazonaws.com"
    )
    u = urlsplit(url)
    loopback = u.hostname in ("127.0.0.1", "localhost", "::1")
    if not u.hostname or not (u.scheme == "https" or (u.scheme == "http" and loopback)):
        raise ConfigError("AWS_ENDPOINT_URL_SECRETS_MANAGER: must be an https:// URL (http:// on loopback)")
    tls = u.scheme == "https"
    return region, u.hostname, u.port or (443 if tls else 80), tls


class _Connection:
    """One keep-alive HTTP/1.1 connection, blocking with a timeout: a POST, its answer. Not
    ``http.client``: importing it (and the ``email`` package behind it) cost ~25 ms of a cold start
    for three requests whose answers are a status line, a Content-Length and a JSON body."""

    def __init__(self, host: str, port: int, tls: bool, timeout: float) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            from collab.adapters.tls import client_context

            sock = client_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buf = b""

    def post(self, head: bytes, body: bytes) -> tuple[int, bytes, bool]:
        """(status, body, keep-alive)."""
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(fields.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        payload, self.buf = self.buf[:length], self.buf[length:]
        return status, payload, fields.get("connection", "").lower() != "close"

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


_conn: _Connection | None = None  # one per container: one TLS handshake for all its secrets
_conn_lock = threading.Lock()


def get_secret_value(arn: str, *, timeout: float = TIMEOUT_S) -> str:
    """The ``SecretString`` of a secret (one signed POST, on the container's kept-alive connection)."""
    with _conn_lock:
        return _get(arn, timeout)


def _get(arn: str, timeout: float) -> str:
    global _conn
    creds = sigv4.env_credentials()
    if creds is None:
        raise ConfigError("AWS_ACCESS_KEY_ID: is required to read secrets")
    region, host, port, tls = _endpoint()
    body = json.dumps({"SecretId": arn}).encode()
    host_header = host if port == (443 if tls else 80) else f"{host}:{port}"
    headers = sigv4.sign_request(
        "POST",
        host_header,
        "/",
        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"},
        body,
        creds,
        region,
        "secretsmanager",
    )
    del headers["Host"]
    head = f"POST / HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more on a new one
        try:
            if _conn is None:
                _conn = _Connection(host, port, tls, timeout)
            status, payload, keep = _conn.post(head.encode(), body)
            break
        except (OSError, ValueError, IndexError) as exc:
            if _conn is not None:
                _conn.close()
            _conn = None
            if attempt == 2:
                raise Unavailable("secrets unavailable") from exc
    if not keep and _conn is not None:
        _conn.close()
        _conn = None
    if status != 200:
        try:
            kind = str(json.loads(payload).get("__type", "")).rsplit("#", 1)[-1]
        except ValueError:
            kind = ""
        # the secret's name and value never go into a message; its ARN is configuration
        raise Unavailable(f"secret {arn}: GetSecretValue answered {status} {kind}".rstrip())
    return str(json.loads(payload)["SecretString"])


class SecretCache:
    """Secret strings by ARN, each fetched again once it is older than ``ttl``."""

    def __init__(self, fetch: Callable[[str], str] | None = None, ttl: float = TTL_S) -> None:
        self._fetch = fetch or get_secret_value
        self._ttl = ttl
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, arn: str) -> str:
        now = time.monotonic()
        hit = self._values.get(arn)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._lock:  # one fetch at a time per container; others wait for it
            hit = self._values.get(arn)
            if hit is not None and time.monotonic() - hit[0] < self._ttl:
                return hit[1]
            value = str(self._fetch(arn))
            self.fetches += 1
            self._values[arn] = (time.monotonic(), value)
            return value
