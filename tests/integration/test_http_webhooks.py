"""The webhook routes over HTTP: the role matrix (owners and admins only) and bad input: malformed
and plain-http URLs, SSRF targets (metadata, private, loopback, mapped, a name resolving to a
private address), names that do not resolve, huge bodies, unknown types, bad ranges."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_http_helpers import Api
from test_http_members import ROLES, make_board

from tests.support.webhook_receiver import Receiver

PUBLIC = "93.184.215.14"  # a documentation-free public address; nothing is ever sent to it here
NAMES = {"hooks.example.test": [PUBLIC], "rebind.example.test": [PUBLIC, "10.0.0.7"]}


def fake_resolve(host: str, port: int) -> list[str]:
    """DNS without the network: literal addresses as themselves, two known names, nothing else."""
    import ipaddress

    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if host in NAMES:
        return NAMES[host]
    raise OSError("Name or service not known")


@pytest.fixture
def strict(rt: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The AWS rules: https to public addresses only (resolved by :func:`fake_resolve`)."""
    from collab.adapters.webhooks import addresses

    monkeypatch.setattr(addresses, "_resolve", fake_resolve)
    return Api(settings)


@pytest.fixture
def local(settings: Any, clean: None, clock: Any) -> Iterator[tuple[Api, Receiver, Any]]:
    """collab dev's rules (loopback allowed), no queue: a redelivery is sent at once, to loopback."""
    from collab import runtime

    s = settings.model_copy(update={"webhook_allow_loopback": True, "webhook_timeout_s": 1.0})
    r = runtime.Runtime(s, clock=clock)
    runtime.install(r)
    receiver = Receiver()
    try:
        yield Api(s), receiver, r
    finally:
        receiver.close()
        runtime.install(None)
        if "db" in r.__dict__:
            r.db.close()


def test_only_owners_and_admins_reach_the_webhook_routes(local: tuple[Api, Receiver, Any]) -> None:
    api, receiver, rt = local
    board = make_board(rt)
    hooks = f"/workspaces/{board.wid}/webhooks"
    mine = api.ok("POST", hooks, "alice", {"url": receiver.url})
    api.ok("PATCH", f"/tasks/{board.tid}", "alice", {"title": "Plan it"})  # seq 1
    expected = {"owner": True, "admin": True, "member": False, "outsider": False}
    for role, user in ROLES.items():
        allowed = expected[role]
        created = api.call("POST", hooks, user, {"url": receiver.url})
        assert created.status == (201 if allowed else 403), (role, created.body)
        listed = api.call("GET", hooks, user)
        assert listed.status == (200 if allowed else 403), role
        attempts = api.call("GET", f"{hooks}/{mine['id']}/deliveries", user)
        assert attempts.status == (200 if allowed else 403), role
        again = api.call("POST", f"{hooks}/{mine['id']}/redeliveries", user, {"from_seq": 1, "to_seq": 1})
        assert again.status == (202 if allowed else 403), role
        if allowed:
            assert "secret" in created.body and all("secret" not in h for h in listed.body["items"])
            gone = api.call("DELETE", f"{hooks}/{created.body['id']}", user)
            assert gone.status == 204, role
        else:
            assert api.call("DELETE", f"{hooks}/{mine['id']}", user).status == 403
            assert created.error["code"] == "forbidden"
    # the owner's and the admin's redeliveries of seq 1 went out, signed, to the loopback receiver
    assert [h["webhook-id"] for h, _ in receiver.received] == [receiver.received[0][0]["webhook-id"]] * 2
    assert api.call("GET", hooks, None).status == 401
    unknown = "/workspaces/00000000-0000-4000-8000-000000000000/webhooks"
    assert api.call("GET", unknown, "alice").status == 404
    assert api.call("DELETE", f"{hooks}/00000000-0000-4000-8000-000000000000", "alice").status == 404


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.test/x", "https"),
        ("https://169.254.169.254/latest/meta-data/", "non-public"),
        ("https://[fd00:ec2::254]/", "non-public"),
        ("https://10.0.0.5/hook", "non-public"),
        ("https://192.168.1.20/hook", "non-public"),
        ("https://127.0.0.1/hook", "non-public"),
        ("https://[::ffff:169.254.169.254]/", "non-public"),
        ("https://[::1]:8443/", "non-public"),
        ("https://rebind.example.test/hook", "non-public"),
        ("https://hooks.nonexistent.invalid/hook", "does not resolve"),
        ("https://user:pw@hooks.example.test/", "user info"),
        ("https://hooks.example.test/" + "a" * 2100, "2048"),
        ("hooks.example.test/hook", "https"),
        ("", "url"),
    ],
)
def test_bad_and_dangerous_urls_are_refused(strict: Api, url: str, why: str) -> None:
    wid = strict.workspace("alice")
    answer = strict.call("POST", f"/workspaces/{wid}/webhooks", "alice", {"url": url})
    assert answer.status == 422, answer.body
    assert why in answer.error["message"] and answer.error["field"].endswith("url")


def test_bad_bodies_and_ranges_are_refused(strict: Api) -> None:
    wid = strict.workspace("alice")
    hooks = f"/workspaces/{wid}/webhooks"
    ok = strict.call(
        "POST", hooks, "alice", {"url": "https://hooks.example.test/in", "event_types": ["task.created"]}
    )
    assert ok.status == 201 and ok.body["event_types"] == ["task.created"] and ok.body["status"] == "active"
    cases = [
        ({"url": "https://hooks.example.test/", "event_types": ["task.exploded"]}, 422),
        ({"url": "https://hooks.example.test/", "secret": "mine"}, 422),
        ({"event_types": []}, 422),
        ({"url": 7}, 422),
    ]
    for body, status in cases:
        assert strict.call("POST", hooks, "alice", body).status == status, body
    huge = {"url": "https://hooks.example.test/", "pad": "x" * 70_000}
    assert strict.call("POST", hooks, "alice", huge).status == 413
    assert strict.call("POST", hooks, "alice", raw_body="{not json").status == 400
    redeliver = f"{hooks}/{ok.body['id']}/redeliveries"
    assert strict.call("POST", redeliver, "alice", {"from_seq": 5, "to_seq": 2}).status == 422
    assert strict.call("POST", redeliver, "alice", {"from_seq": 1, "to_seq": 5000}).status == 422
    assert strict.call("POST", redeliver, "alice", {"from_seq": 0, "to_seq": 1}).status == 422
    beyond = strict.call("POST", redeliver, "alice", {"from_seq": 1, "to_seq": 3})
    assert beyond.status == 422 and "last seq is 0" in beyond.error["message"]
    other = f"{hooks}/00000000-0000-4000-8000-000000000000/redeliveries"
    assert strict.call("POST", other, "alice", {"from_seq": 1, "to_seq": 1}).status == 404
    assert strict.call("GET", f"{hooks}/not-a-uuid/deliveries", "alice").status == 422
    for _ in range(9):
        assert strict.call("POST", hooks, "alice", {"url": "https://hooks.example.test/"}).status == 201
    tenth = strict.call("POST", hooks, "alice", {"url": "https://hooks.example.test/"})
    assert tenth.status == 422 and "at most 10" in tenth.error["message"]
