"""The real fan-out client over TLS: a local HTTPS endpoint with its own CA, trusted the standard way
(``SSL_CERT_FILE``), and endpoints that misbehave: one that accepts TCP and never answers, one that
resets, one that trickles its answers. Whatever the endpoint does, a fan-out returns by its deadline
(the invocation's remaining time less a margin)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.tls_endpoint import Endpoint, LocalCa, make_ca
from collab import deadline
from collab.adapters import tls
from collab.adapters.apigw import sigv4
from collab.adapters.apigw.http_pool import Broadcaster
from collab.adapters.apigw.management import ManagementApi

CREDS = sigv4.Credentials("AKIDEXAMPLE", "secret")
CIDS = [f"L0SM9cOFvHcCI{i:03d}=" for i in range(50)]
BODY = b'{"type":"task.updated","data":{"task":{"id":"x","title":"' + b"a" * 400 + b'"}}}'


class Context:
    """A Lambda context with a given budget."""

    def __init__(self, ms: int) -> None:
        self.end = time.monotonic() + ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_ca(Path(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def trusted(ca: LocalCa, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCa]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))  # how Lambda's OpenSSL finds its CAs too
    tls.reset()  # the container's context is built once: build it with this trust store
    yield ca
    tls.reset()


@pytest.fixture
def endpoint(trusted: LocalCa) -> Iterator[Any]:
    started: list[Endpoint] = []

    def start(mode: str = "ok", **kwargs: Any) -> Endpoint:
        e = Endpoint(trusted, mode, **kwargs)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


def within(ms: int, fn: Any, *args: Any) -> tuple[Any, float]:
    """Run ``fn`` as a handler with ``ms`` of budget; its result and the seconds it took."""
    t0 = time.monotonic()
    out = deadline.bounded(lambda event, context: fn(*args))(None, Context(ms))
    return out, time.monotonic() - t0


def test_posts_over_tls_verify_the_certificate_and_reuse_connections(endpoint: Any) -> None:
    api = ManagementApi(endpoint().url + "/prod", credentials=CREDS)
    receipt = api.broadcast(CIDS, BODY)
    assert len(receipt.delivered) == 50
    first = api.stats()
    assert first["handshakes"] == first["connects"] == 8  # a new container opens 8 at first
    for _ in range(4):
        assert len(api.broadcast(CIDS, BODY).delivered) == 50
    grown = api.stats()
    assert grown["handshakes"] == grown["connects"] == 25  # 50 posts in two waves of 25
    assert len(api.broadcast(CIDS, BODY).delivered) == 50
    assert api.stats()["connects"] == 25  # warm: keep-alive, no new handshake


def test_an_untrusted_certificate_is_refused(
    ca: LocalCa, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_ca(tmp_path / "other")
    e = Endpoint(other)  # served with a certificate of a CA nobody trusts
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
        tls.reset()
        api = ManagementApi(e.url, credentials=CREDS)
        receipt, took = within(3000, api.broadcast, CIDS[:5], BODY)
        assert receipt.failed == CIDS[:5] and took < 2
    finally:
        e.close()
        tls.reset()


def test_tls_sessions_are_resumed_by_later_connections(endpoint: Any) -> None:
    api = ManagementApi(endpoint().url, credentials=CREDS)
    assert api.broadcast(CIDS[:1], BODY).delivered  # one full handshake; its ticket is kept
    assert len(api.broadcast(CIDS[:20], BODY).delivered) == 20  # 8 new connections
    stats = api.stats()
    assert stats["handshakes"] == 9
    assert stats["resumed"] == 8


def test_handshakes_overlap_instead_of_running_one_after_another(endpoint: Any) -> None:
    # 100 ms of round trip: 32 handshakes in series would take 3.2 s before the last post went out;
    # overlapping, the whole fan-out is about two round trips (handshake, post). The bound is half
    # the serial time, so a loaded machine does not fail it.
    e = endpoint(rtt_s=0.1)
    pool = Broadcaster("127.0.0.1", e.port, tls=True, max_new=32)
    request = b"POST /prod/@connections/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"
    t0 = time.monotonic()
    assert pool.send([request] * 32) == [200] * 32
    took = time.monotonic() - t0
    assert pool.handshakes == 32
    assert took < 1.6, took


def test_connections_opened_at_init_serve_the_first_fan_out_without_a_handshake(endpoint: Any) -> None:
    api = ManagementApi(endpoint().url + "/prod", credentials=CREDS)
    assert api.warm(25) == 25
    ahead = api.stats()
    assert ahead["connects"] == ahead["handshakes"] == 25
    time.sleep(0.05)  # TLS 1.3 session tickets arrive on the idle connections: they must stay
    receipt = api.broadcast(CIDS, BODY)
    assert len(receipt.delivered) == 50
    assert api.stats() == ahead  # every post went out on a connection opened ahead
    assert api.warm(25) == 25 and api.stats() == ahead  # warm again: nothing to open


def test_warming_against_an_endpoint_that_never_answers_ends_by_its_budget(endpoint: Any) -> None:
    api = ManagementApi(endpoint("hang").url, credentials=CREDS)
    t0 = time.monotonic()
    assert api.warm(25, budget_s=0.3) == 0  # no handshake completes: nothing kept
    assert time.monotonic() - t0 < 3  # the budget (0.3 s) bounds it; generous for a loaded machine
    assert api.warm(5, budget_s=0.1) == 0


def test_the_message_function_warms_only_an_https_endpoint(endpoint: Any, settings: Any) -> None:
    from collab import runtime
    from collab.ws import message

    url = endpoint().url + "/prod"
    for given, opened in ((url, 25), (url.replace("https://", "http://"), 0), (None, 0)):
        rt = runtime.Runtime(settings.model_copy(update={"connections_endpoint": given}))
        assert message.prepare(rt) == opened
    off = runtime.Runtime(
        settings.model_copy(update={"connections_endpoint": url, "fanout_warm_connections": 0})
    )
    assert message.prepare(off) == 0


@pytest.mark.parametrize("mode", ["hang", "reset", "trickle"])
def test_a_misbehaving_endpoint_never_holds_a_fan_out_past_its_deadline(endpoint: Any, mode: str) -> None:
    api = ManagementApi(endpoint(mode).url, credentials=CREDS)
    receipt, took = within(1500, api.broadcast, CIDS[:40], BODY)
    assert receipt.failed == CIDS[:40]
    assert took <= 1.5 - deadline.MARGIN_S + 0.15, took  # answered before the invocation's end
    # and the next fan-out of the same invocation has no time left: it fails at once
    receipt, took = within(100, api.broadcast, CIDS[:5], BODY)
    assert receipt.failed == CIDS[:5] and took < 0.05


def test_without_an_invocation_the_hard_cap_holds(endpoint: Any) -> None:
    api = ManagementApi(endpoint("hang").url, credentials=CREDS, timeout=0.5)
    t0 = time.monotonic()
    assert api.broadcast(CIDS[:3], BODY).failed == CIDS[:3]
    assert time.monotonic() - t0 < 0.7
