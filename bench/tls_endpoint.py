"""A local HTTPS endpoint with its own CA, behaving as API Gateway does or as it should not.

Used by the fan-out tests (``tests/unit/test_fanout_tls.py``, the hanging-endpoint test) and the
TLS benchmarks (``bench.tls_fanout``, ``bench.coldstart``). The CA is a throwaway RSA 2048 root with
a leaf for ``127.0.0.1`` / ``localhost`` (as Amazon's endpoints use RSA 2048 certificates); clients
trust it the standard way, through ``SSL_CERT_FILE`` (read by ``ssl.create_default_context``).

Modes:

* ``ok``: HTTP/1.1 keep-alive, 200 to every request (pipelined ones too), after ``delay_s``;
* ``hang``: accepts TCP and never reads nor answers (no TLS handshake ever completes);
* ``reset``: accepts TCP and resets it at once (RST);
* ``trickle``: completes the TLS handshake, then sends each response one byte every 100 ms.

``rtt_s`` puts a TCP relay in front that delays every chunk by half of it in each direction, so a
handshake pays its round trips as it would over a network.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"


@dataclass(frozen=True)
class LocalCa:
    ca_file: Path  # the root, as a bundle for SSL_CERT_FILE
    cert_file: Path  # the server's chain (leaf)
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_ca(folder: Path) -> LocalCa:
    """A root CA and a server certificate for 127.0.0.1 and localhost, written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Collab test root CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = LocalCa(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    out.ca_file.write_bytes(ca.public_bytes(pem))
    out.cert_file.write_bytes(leaf.public_bytes(pem))
    out.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    out.key_file.chmod(0o600)
    return out


class _Http(asyncio.Protocol):
    """200 to every request on a keep-alive connection (``trickle``: one byte per 100 ms)."""

    def __init__(
        self, delay_s: float, trickle: bool, respond: Callable[[bytes, bytes], bytes] | None
    ) -> None:
        self.delay_s, self.trickle, self.respond = delay_s, trickle, respond
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            answer = self.respond(head, body) if self.respond else OK
            if self.trickle:
                self._drip(answer)
            elif self.delay_s:
                asyncio.get_running_loop().call_later(self.delay_s, self._write, answer)
            else:
                self.transport.write(answer)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def _drip(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data[:1])
            asyncio.get_running_loop().call_later(0.1, self._drip, data[1:])


class _Hang(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        transport.pause_reading()  # never reads: the client's ClientHello waits forever


class _Reset(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class _Relay(asyncio.Protocol):
    """A TCP relay that delays each chunk by ``half`` seconds in each direction."""

    def __init__(self, target: tuple[str, int], half: float) -> None:
        self.target, self.half = target, half
        self.transport: Any = None
        self.peer: Any = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        back = _Back(self)
        await loop.create_connection(lambda: back, *self.target)
        self.peer = back.transport
        for chunk in self.pending:
            self.peer.write(chunk)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().call_later(self.half, self._forward, data)

    def _forward(self, data: bytes) -> None:
        if self.peer is None:
            self.pending.append(data)
        elif not self.peer.is_closing():
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


class _Back(asyncio.Protocol):
    def __init__(self, front: _Relay) -> None:
        self.front = front
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().call_later(self.front.half, self._back, data)

    def _back(self, data: bytes) -> None:
        if not self.front.transport.is_closing():
            self.front.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.transport.close()


async def start(
    ca: LocalCa,
    mode: str = "ok",
    *,
    delay_s: float = 0.0,
    rtt_s: float = 0.0,
    respond: Callable[[bytes, bytes], bytes] | None = None,
    port: int = 0,
) -> tuple[int, list[asyncio.AbstractServer]]:
    """Start the endpoint on 127.0.0.1; returns its port and the servers to close."""
    loop = asyncio.get_running_loop()
    if mode == "hang":
        server = await loop.create_server(_Hang, "127.0.0.1", port, backlog=512)
    elif mode == "reset":
        server = await loop.create_server(_Reset, "127.0.0.1", port, backlog=512)
    elif mode in ("ok", "trickle"):
        trickle = mode == "trickle"
        server = await loop.create_server(
            lambda: _Http(delay_s, trickle, respond),
            "127.0.0.1",
            0 if rtt_s else port,
            ssl=ca.server_context(),
            backlog=512,
        )
    else:
        raise ValueError(f"unknown mode {mode!r}")
    inner = server.sockets[0].getsockname()[1]
    if not rtt_s:
        return inner, [server]
    relay = await loop.create_server(
        lambda: _Relay(("127.0.0.1", inner), rtt_s / 2), "127.0.0.1", port, backlog=512
    )
    return relay.sockets[0].getsockname()[1], [relay, server]


class Endpoint:
    """The endpoint served from a background thread's event loop (for tests)."""

    def __init__(self, ca: LocalCa, mode: str = "ok", **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"tls-{mode}", daemon=True)
        self._thread.start()
        self.port, self._servers = asyncio.run_coroutine_threadsafe(
            start(ca, mode, **kwargs), self.loop
        ).result(10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
