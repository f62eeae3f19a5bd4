"""Webhook signing and the SSRF rules, without a network: signatures checked by the Standard
Webhooks reference implementation; the address rules at registration and at delivery (rebinding)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from collab.adapters.webhooks import addresses, sender, signing
from collab.errors import ValidationError


def test_signatures_verify_with_the_reference_implementation() -> None:
    import time

    secret = signing.new_secret()
    body = b'{"type":"task.created","timestamp":"2026-01-01T00:00:00.000Z","data":{"seq":1}}'
    headers = signing.headers(secret, "evt_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers)["data"] == {"seq": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)  # another endpoint's secret
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"1}", b"2}"), headers)  # a changed body


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fd00:ec2::254",
        "fe80::1", "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",
        "240.0.0.1", "192.0.2.1", "198.18.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not addresses.allowed(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert addresses.allowed(address)


def test_loopback_only_when_the_setting_allows_it() -> None:
    assert addresses.allowed("127.0.0.1", allow_loopback=True)
    assert addresses.allowed("::1", allow_loopback=True)
    assert not addresses.allowed("10.0.0.1", allow_loopback=True)
    assert not addresses.allowed("169.254.169.254", allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # not https
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",  # user info
        "https:///nohost",
        "https://hooks.example.com:99999/x",  # bad port
        "https://hooks.example.com/" + "a" * 2100,
        "https://hooks.example.com/a b",
        "https://[::1/",
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        addresses.check(url, resolve=lambda h, p: ["93.184.215.14"])


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="non-public"):
        addresses.check("https://hooks.example.com/", resolve=lambda h, p: ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(ValidationError, match="does not resolve"):
        addresses.check("https://hooks.example.com/", resolve=lambda h, p: [])

    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(ValidationError, match="does not resolve"):
        addresses.check("https://nowhere.invalid/", resolve=fails)


class _Sink(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Sink.hits.append(self.headers["Host"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_sink() -> Any:
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Sink.hits = []
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_delivery_checks_the_address_again_and_connects_to_the_checked_one(local_sink: int) -> None:
    # A name that resolved to a public address at registration now resolves to the metadata service:
    # refused at delivery, nothing sent.
    secret = signing.new_secret()
    rebound = sender.deliver(
        f"http://hooks.example.test:{local_sink}/", secret, "evt_1", b"{}",
        allow_loopback=True, resolve=lambda h, p: ["169.254.169.254"],
    )  # fmt: skip
    assert not rebound.ok and rebound.refused and "non-public" in (rebound.error or "")
    assert _Sink.hits == []
    # The connection goes to the checked address, with the URL's host name in the Host header.
    ok = sender.deliver(
        f"http://hooks.example.test:{local_sink}/", secret, "evt_1", b"{}",
        allow_loopback=True, resolve=lambda h, p: ["127.0.0.1"],
    )  # fmt: skip
    assert ok.ok and ok.status == 204
    assert _Sink.hits == [f"hooks.example.test:{local_sink}"]


def test_an_unreachable_receiver_is_a_failure_not_an_exception() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    out = sender.deliver(
        f"http://127.0.0.1:{port}/", signing.new_secret(), "evt_1", b"{}", allow_loopback=True
    )
    assert not out.ok and not out.refused and "Connection" in (out.error or "")
