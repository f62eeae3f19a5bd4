"""web/collab-client.js (the @collab/client bundle) in Chromium against a scripted server: the
protocol rules of contract 3.4, and the client's robustness: token refresh, specific refusals, loss
noticed at once, send pacing, limits checked before sending, snapshots with stable identity.

The page's ``WebSocket`` is replaced by a fake the test drives frame by frame, and the HTTP API is
answered by Playwright routes, so each rule (version ordering, seq gaps, paged replays, optimistic
changes and their rollback, heartbeat timeout, backoff, re-sending queued changes) is shown in
isolation, without timing luck. The real stack is exercised in test_browser.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

WEB = Path(__file__).resolve().parents[2] / "web"
ORIGIN = "http://client.test"
WID = "7f1c1f43-5d8c-4f0e-9a55-0d6a4c7a3b01"
TASK = "2b0c9a5e-41f2-4a55-a9a3-6f0a1c2d3e4f"
WAIT_MS = 10_000

FAKE_SOCKET = """
window.__sockets = [];
class FakeSocket {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    this.url = url; this.readyState = 0; this.sent = []; this.openedAt = Date.now();
    window.__sockets.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen && this.onopen({}); }, 0);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({ code: code ?? 1005 }), 0);
  }
  deliver(frame) { this.onmessage && this.onmessage({ data: JSON.stringify(frame) }); }
}
window.WebSocket = FakeSocket;
"""


def _token() -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none'})}.{b64({'sub': 'me', 'name': 'Me Myself'})}.sig"


def task(version: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": TASK,
        "workspace_id": WID,
        "title": "Title",
        "description": "",
        "status": "todo",
        "priority": "low",
        "due_date": None,
        "assigned_to": None,
        "created_by": "me",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_by": "me",
        "updated_at": "2026-01-01T00:00:00Z",
        "version": version,
        "deleted": False,
    }
    return {**base, **fields}


def event(seq: int, t: dict[str, Any], kind: str = "task.updated") -> dict[str, Any]:
    return {
        "type": kind,
        "workspace_id": WID,
        "user_id": "peer",
        "timestamp": "2026-01-01T00:00:00Z",
        "seq": seq,
        "data": {"task": t},
    }


def reply(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": type_,
        "workspace_id": WID,
        "user_id": "me",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": data,
    }


def sync_reply(seq: int, events: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    data = {"seq": seq, "events": events or [], "resync": False, "presence": [], "notifications": []}
    return reply("sync", {**data, **extra})


class Harness:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.tickets = 0
        self.ticket_status: list[int] = []  # statuses the next ticket requests answer (then 200)
        self.ticket_auth: list[str] = []  # the Authorization header of each ticket request
        self.accepted_token = ""  # when set, a ticket request with another token is answered 401
        self.tasks: list[dict[str, Any]] = [task(2)]
        self.presence: list[dict[str, Any]] = []  # GET /workspaces/{id}/presence
        self.presence_reads = 0

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def start(self, **options: Any) -> None:
        opts = {"token": _token(), "workspaceId": WID, **options}
        self.js(
            """async (opts) => {
              const { CollabClient } = await import('/collab-client.js');
              window.__tokenReasons = [];
              if (opts.refreshing) {
                // getToken: "old" on the first call, "fresh" once the server refused a token
                const base = opts.token;
                let token = base.replace('.sig', '.old');
                opts.getToken = (reason) => {
                  window.__tokenReasons.push(reason);
                  if (reason === 'unauthorized') token = base.replace('.sig', '.fresh');
                  return Promise.resolve(token);
                };
                delete opts.token;
              }
              const c = new CollabClient(opts);
              window.__events = [];
              const plain = (d) => d && d.error
                ? { ...d, error: { code: d.error.code, message: d.error.message, field: d.error.field } }
                : d;
              for (const name of ['rejected', 'state'])
                c.on(name, (detail) => window.__events.push({ name, detail: plain(detail) }));
              // The delay of each reconnect the client schedules, read from the timer it sets: the
              // backoff is checked as a number, not by the wall clock of a loaded machine.
              window.__reconnectDelays = [];
              const schedule = c._scheduleReconnect.bind(c);
              c._scheduleReconnect = (reason) => {
                const realSetTimeout = window.setTimeout;
                window.setTimeout = (fn, ms, ...rest) => {
                  window.__reconnectDelays.push(ms);
                  return realSetTimeout(fn, ms, ...rest);
                };
                try { return schedule(reason); } finally { window.setTimeout = realSetTimeout; }
              };
              window.client = c;
              c.start();
            }""",
            opts,
        )

    def sockets(self) -> int:
        return int(self.js("window.__sockets.length"))

    def sent(self, index: int = -1) -> list[dict[str, Any]]:
        return list(self.js("(i) => window.__sockets.at(i).sent", index))

    def wait_sent(self, predicate: str, index: int = -1) -> None:
        """Wait until the socket has sent a frame matching ``predicate`` (JS, frame is ``f``)."""
        self.page.wait_for_function(
            f"([i]) => window.__sockets.length && (window.__sockets.at(i).sent || []).some((f) => {predicate})",
            arg=[index],
            timeout=WAIT_MS,
        )

    def deliver(self, frame: dict[str, Any], index: int = -1) -> None:
        self.js("([i, f]) => window.__sockets.at(i).deliver(f)", [index, frame])

    def state(self) -> str:
        return str(self.js("window.client.state"))

    def wait_state(self, state: str) -> None:
        self.page.wait_for_function("(s) => window.client.state === s", arg=state, timeout=WAIT_MS)

    def held(self) -> dict[str, Any] | None:
        return self.js("(id) => window.client.task(id) ?? null", TASK)  # type: ignore[no-any-return]

    def go_live(self, seq: int = 5) -> None:
        self.wait_sent("f.action === 'sync'")
        self.deliver(sync_reply(seq))
        self.wait_state("live")


@pytest.fixture
def client(browser: Any) -> Iterator[Harness]:
    context = browser.new_context()
    page = context.new_page()
    h = Harness(page)

    def api(route: Any) -> None:
        url = route.request.url
        if url.endswith("/api/ws-tickets"):
            auth = route.request.headers.get("authorization", "")
            h.ticket_auth.append(auth)
            status = h.ticket_status.pop(0) if h.ticket_status else 200
            if h.accepted_token and not auth.endswith(h.accepted_token):
                status = 401
            if status != 200:
                codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "validation_error"}
                error = {"error": {"code": codes.get(status, "internal"), "message": f"refused ({status})"}}
                route.fulfill(status=status, content_type="application/json", body=json.dumps(error))
                return
            h.tickets += 1
            body = {
                "ticket": f"t{h.tickets}",
                "url": f"ws://client.test/ws?token=t{h.tickets}",
                "expires_at": 0,
            }
        elif f"/api/workspaces/{WID}/tasks" in url:
            body = {"items": h.tasks, "next_cursor": None}
        elif url.endswith(f"/api/workspaces/{WID}/presence"):
            h.presence_reads += 1
            body = {"items": h.presence, "next_cursor": None}
        else:
            body = {"items": [], "next_cursor": None}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    def static(route: Any) -> None:
        name = route.request.url.removeprefix(ORIGIN).strip("/") or "blank"
        if name == "blank":
            route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>")
        else:
            route.fulfill(status=200, content_type="text/javascript", body=(WEB / name).read_text())

    page.route(f"{ORIGIN}/api/**", api)
    page.route(lambda url: url.startswith(ORIGIN) and "/api/" not in url, static)
    page.add_init_script(FAKE_SOCKET)
    page.goto(f"{ORIGIN}/")
    yield h
    context.close()


def test_first_sync_loads_over_http_then_events_apply_by_version_and_seq(client: Harness) -> None:
    client.start()
    # The first frame is sync with since=null; state then comes over HTTP.
    client.wait_sent("f.action === 'sync'")
    assert client.sent()[0] == {"action": "sync", "since": None}
    client.deliver(sync_reply(5))
    client.wait_state("live")
    assert client.held()["version"] == 2  # type: ignore[index]

    # A newer version applies; an older one arriving late does not.
    client.deliver(event(6, task(3, title="v3")))
    client.deliver(event(7, task(2, title="stale")))
    assert client.held()["title"] == "v3"  # type: ignore[index]
    assert client.js("window.client.lastSeq") == 7

    # A gap (9 after 7) makes the client sync from what it applied.
    client.deliver(event(9, task(5, title="v5")))
    client.wait_sent("f.action === 'sync' && f.since === 7")

    # A paged replay (data.seq beyond its last event) is followed by another sync.
    client.deliver(sync_reply(12, [event(8, task(4)), event(9, task(5, title="v5"))]))
    client.wait_sent("f.action === 'sync' && f.since === 9")
    client.deliver(sync_reply(12, [event(10, task(6)), event(11, task(7)), event(12, task(8, title="v8"))]))
    client.wait_state("live")
    assert client.js("window.client.lastSeq") == 12
    assert client.held()["title"] == "v8"  # type: ignore[index]
    assert sum(1 for f in client.sent() if f["action"] == "sync") == 3

    # Deletion is a tombstone: the task leaves the board, and an older update cannot revive it.
    client.deliver(event(13, task(9, deleted=True), kind="task.deleted"))
    client.deliver(event(14, task(8, title="late")))
    assert client.held() is None
    assert client.js("window.client.tasks().length") == 0


def test_optimistic_change_stays_on_top_of_remote_versions_and_rolls_back_on_error(client: Harness) -> None:
    client.start()
    client.go_live(seq=5)

    # Given a pending title change
    client.js("(id) => void window.client.updateTask(id, { title: 'mine' })", TASK)
    client.wait_sent("f.action === 'task.update'")
    first = next(f for f in client.sent() if f["action"] == "task.update")
    assert first["changes"] == {"title": "mine"} and len(first["request_id"]) == 36
    assert client.held()["title"] == "mine" and client.held()["pending"] is True  # type: ignore[index]

    # When a remote change to another field arrives, the pending title stays on top of it
    client.deliver(event(6, task(3, priority="urgent")))
    held = client.held()
    assert held is not None and held["title"] == "mine" and held["priority"] == "urgent"

    # Then the ack's committed task is adopted and nothing is pending
    committed = task(4, title="mine", priority="urgent")
    client.deliver(reply("ack", {"request_id": first["request_id"], "ok": True, "task": committed, "seq": 7}))
    assert client.held() == {**committed, "pending": False}
    assert client.js("window.client.lastSeq") == 7  # the ack's seq counts: no false gap

    # And a change the server refuses is rolled back, with the reason reported
    client.js("(id) => { window.__refused = window.client.updateTask(id, { status: 'done' }) }", TASK)
    client.wait_sent("f.action === 'task.update' && f.changes.status === 'done'")
    second = client.sent()[-1]
    error = {"code": "forbidden", "message": "viewers cannot edit"}
    client.deliver(reply("ack", {"request_id": second["request_id"], "ok": False, "error": error}))
    assert client.held()["status"] == "todo"  # type: ignore[index]
    assert client.js("window.client.pendingCount") == 0
    rejected = [e for e in client.js("window.__events") if e["name"] == "rejected"]
    assert rejected[-1]["detail"]["error"]["code"] == "forbidden"
    # and the mutation's promise rejects with the same typed error
    assert client.js("window.__refused.then(() => 'ok', (e) => e.code + ':' + (e instanceof Error))") == (
        "forbidden:true"
    )


def test_silent_server_means_reconnect_with_a_fresh_ticket_and_queued_changes_are_resent(
    client: Harness,
) -> None:
    # Long timers while the test sets up (a loaded machine must not time a socket out meanwhile);
    # then one probing heartbeat is sent with a 300 ms deadline, and never answered.
    client.start(heartbeatMs=600_000, heartbeatTimeoutMs=600_000, probeAfterMs=600_000, backoffBaseMs=100)
    client.go_live(seq=5)
    assert client.tickets == 1

    # Given a probe that is never answered, Then the client gives up on the socket
    client.js("window.client.heartbeatTimeoutMs = 300; window.client._beat(window.client._ws, true)")
    client.wait_sent("f.action === 'heartbeat' && f.probe === true")
    client.page.wait_for_function("window.__sockets[0].readyState === 3", timeout=WAIT_MS)
    client.js("window.client.heartbeatTimeoutMs = 600000")  # the next socket must not time out too

    # And a change made while offline is queued
    client.js("(id) => void window.client.updateTask(id, { status: 'done' })", TASK)
    assert client.held()["status"] == "done"  # type: ignore[index]

    # When it reconnects (fast first retry, a new ticket), it syncs from where it was
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    # the first retry was scheduled within firstRetryMs (100 ms by default), not a backoff step
    first_delay = client.js("window.__reconnectDelays[0]")
    assert 0 <= first_delay < client.js("window.client.firstRetryMs") == 100
    assert client.tickets == 2 and client.js("window.__sockets[1].url").endswith("token=t2")
    client.wait_sent("f.action === 'sync'", index=1)
    assert client.sent(1)[0] == {"action": "sync", "since": 5}
    assert not any(f["action"] == "task.update" for f in client.sent(1))  # not before the sync reply
    client.deliver(sync_reply(5), index=1)

    # Then the queued change goes out once, with the request_id it was given offline
    client.wait_sent("f.action === 'task.update'", index=1)
    [update] = [f for f in client.sent(1) if f["action"] == "task.update"]
    assert update["changes"] == {"status": "done"}
    client.deliver(reply("heartbeat.ack", {}), index=1)


def test_oversized_frame_is_refused_before_it_is_sent(client: Harness) -> None:
    client.start()
    client.go_live()
    # 10,000 four-byte characters fit the description's 10,000 character limit but not a 32 KB frame.
    client.js("(id) => void window.client.updateTask(id, { description: '😀'.repeat(10000) })", TASK)
    rejected = [e for e in client.js("window.__events") if e["name"] == "rejected"]
    assert rejected[-1]["detail"]["error"]["code"] == "payload_too_large"
    assert not any(f["action"] == "task.update" for f in client.sent())
    assert client.js("window.client.pendingCount") == 0


def presence_event(kind: str, user: str, last_seen: str, status: str = "active") -> dict[str, Any]:
    entry = {
        "user": {"id": user, "display_name": user.title()},
        "status": status,
        "viewing": None,
        "last_seen": last_seen,
    }
    return {**reply(kind, entry), "user_id": user}


def test_presence_events_arriving_out_of_order_keep_the_newest_state(client: Harness) -> None:
    """Presence events carry no seq and come from concurrent invocations: a stale `updated` that
    arrives after `left` must not bring the user back, and a stale `left` must not remove a user
    who has joined again since."""
    client.start()
    client.go_live()
    users = "() => [...window.client.presence.values()].map((p) => p.user.id + ':' + p.status).sort()"
    client.deliver(presence_event("presence.joined", "bob", "2026-01-01T00:00:01.000Z"))
    client.deliver(presence_event("presence.left", "bob", "2026-01-01T00:00:03.000Z"))
    client.deliver(presence_event("presence.updated", "bob", "2026-01-01T00:00:02.000Z", status="away"))
    assert client.js(users) == []
    client.deliver(presence_event("presence.joined", "bob", "2026-01-01T00:00:05.000Z"))
    client.deliver(presence_event("presence.left", "bob", "2026-01-01T00:00:04.000Z"))  # an old session's
    assert client.js(users) == ["bob:active"]
    client.deliver(presence_event("presence.updated", "bob", "2026-01-01T00:00:06.000Z", status="away"))
    assert client.js(users) == ["bob:away"]


def test_a_reorder_that_closes_within_the_grace_sends_no_sync(client: Harness) -> None:
    """Concurrent fan-outs deliver seqs out of order: 7 before 6 is not a loss."""
    client.start()
    client.go_live(seq=5)
    syncs = "() => window.__sockets.at(-1).sent.filter((f) => f.action === 'sync').length"
    assert client.js(syncs) == 1
    client.deliver(event(7, task(4, title="seven")))
    client.deliver(event(6, task(3, title="six")))
    assert client.js("window.client.lastSeq") == 7
    client.page.wait_for_timeout(500)  # longer than the 300 ms grace
    assert client.js(syncs) == 1
    assert client.held()["title"] == "seven"  # type: ignore[index]


def test_more_notifications_than_one_reply_holds_are_fetched_with_another_sync(client: Harness) -> None:
    """Contract v1.2: a sync reply whose notifications were cut at 128 KB says so; the client syncs
    again (from the last seq it applied) until none wait."""
    client.start()
    client.go_live(5)
    client.deliver(event(6, task(3)))
    note = {
        "id": "n1",
        "type": "task.assigned",
        "workspace_id": WID,
        "task_id": None,
        "actor_id": "bob",
        "payload": {},
        "created_at": "2026-01-01T00:00:00Z",
        "delivered_at": None,
        "read_at": None,
    }
    client.deliver(event(8, task(5)))  # a gap: the client syncs from 6
    client.wait_sent("f.action === 'sync' && f.since === 6")
    client.deliver(sync_reply(8, [event(7, task(4))], notifications=[note], more_notifications=True))
    client.wait_sent("f.action === 'sync' && f.since === 8")
    client.deliver(sync_reply(8, [], notifications=[{**note, "id": "n2"}]))
    client.wait_state("live")
    assert client.js("window.client.unreadCount") == 2
    syncs = [f for f in client.sent() if f["action"] == "sync"]
    assert [f["since"] for f in syncs][-2:] == [6, 8]


# -- v1.2: modes and quiet heartbeats -------------------------------------------------------------
HEARTBEATS = "(i) => window.__sockets.at(i).sent.filter((f) => f.action === 'heartbeat')"


def set_visibility(client: Harness, state: str) -> None:
    """Chromium's page is always visible under Playwright: override the property, fire the event."""
    client.js(
        """(state) => {
          Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
          Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
          document.dispatchEvent(new Event('visibilitychange'));
        }""",
        state,
    )


def test_quiet_heartbeats_need_no_answer_and_a_dead_socket_is_found_by_a_probe(client: Harness) -> None:
    client.start(heartbeatMs=100, heartbeatTimeoutMs=300, probeAfterMs=1500, backoffBaseMs=100)
    client.go_live(seq=5)
    # Given heartbeats nobody answers, Then they carry the last seq and the mode, and ask nothing
    # (one may have gone before the sync reply, with seq null)
    live = f"({HEARTBEATS})(-1).filter((f) => f.seq === 5)"
    client.page.wait_for_function(f"{live}.length >= 4", arg=None, timeout=WAIT_MS)
    assert client.js(f"() => {live}")[:4] == [{"action": "heartbeat", "seq": 5, "mode": "active"}] * 4
    assert client.js("window.__sockets[0].readyState") == 1  # the socket is not given up for that
    # And any frame from the server is a sign of life: it puts the probe off
    client.deliver(presence_event("presence.joined", "bob", "2026-01-01T00:00:01.000Z"))
    # When the server stays silent for probeAfterMs, Then a heartbeat probes
    client.wait_sent("f.action === 'heartbeat' && f.probe === true", index=0)
    # And with no frame within heartbeatTimeoutMs the socket is dead: a new one, with a fresh ticket
    client.page.wait_for_function("window.__sockets[0].readyState === 3", timeout=WAIT_MS)
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    client.wait_sent("f.action === 'sync'", index=1)
    assert client.sent(1)[0] == {"action": "sync", "since": 5}


def test_an_answered_probe_keeps_the_socket_and_an_answer_beyond_its_seq_syncs(client: Harness) -> None:
    client.start(heartbeatMs=100, heartbeatTimeoutMs=300, probeAfterMs=300, gapGraceMs=50)
    client.go_live(seq=5)
    client.wait_sent("f.action === 'heartbeat' && f.probe === true")
    client.deliver(reply("heartbeat.ack", {"seq": 7}))  # alive, and it missed 6 and 7
    client.page.wait_for_function(
        "window.__sockets[0].sent.filter((f) => f.action === 'sync').length === 2", timeout=WAIT_MS
    )
    assert [f for f in client.sent(0) if f["action"] == "sync"][-1] == {"action": "sync", "since": 5}
    assert client.js("window.__sockets[0].readyState") == 1 and client.sockets() == 1


def test_a_hidden_tab_says_away_slows_its_heartbeat_and_comes_back_active_with_a_probe(
    client: Harness,
) -> None:
    client.start(heartbeatMs=100, awayHeartbeatMs=60_000, hiddenAwayMs=200, heartbeatTimeoutMs=2000)
    client.go_live(seq=5)
    client.wait_sent("f.action === 'heartbeat'")
    # When the tab is hidden, Then after hiddenAwayMs one heartbeat says away...
    set_visibility(client, "hidden")
    client.wait_sent("f.action === 'heartbeat' && f.mode === 'away'")
    assert client.js("window.client.mode") == "away"
    away_at = len(client.js(HEARTBEATS, -1))
    # ...and the next waits for the away period (60 s here): none in the time of ten active ones
    client.page.wait_for_timeout(1000)
    assert len(client.js(HEARTBEATS, -1)) == away_at
    # When it is visible again, Then at once a heartbeat says active and probes the socket
    set_visibility(client, "visible")
    client.wait_sent("f.action === 'heartbeat' && f.mode === 'active' && f.probe === true")
    assert client.js("window.client.mode") == "active"
    # And the answer brings the presence list (an away tab is sent no presence.updated)
    cat = presence_event("presence.updated", "cat", "2026-01-01T00:00:09.000Z", status="away")["data"]
    client.deliver(reply("heartbeat.ack", {"seq": 5, "presence": [cat]}))
    users = "() => [...window.client.presence.values()].map((p) => p.user.id + ':' + p.status)"
    assert client.js(users) == ["cat:away"]
    client.page.wait_for_function(f"({HEARTBEATS})(-1).length >= {away_at + 3}", arg=None, timeout=WAIT_MS)
    assert client.sockets() == 1  # answered: the socket stays


def test_a_glance_at_another_tab_changes_nothing(client: Harness) -> None:
    client.start(heartbeatMs=100, hiddenAwayMs=5000)
    client.go_live(seq=5)
    set_visibility(client, "hidden")
    set_visibility(client, "visible")
    client.page.wait_for_function(f"({HEARTBEATS})(-1).length >= 3", arg=None, timeout=WAIT_MS)
    assert all(f["mode"] == "active" for f in client.js(HEARTBEATS, -1))


def test_an_idle_tab_goes_away_and_input_brings_it_back(client: Harness) -> None:
    client.start(heartbeatMs=100, idleMs=400, awayHeartbeatMs=60_000, heartbeatTimeoutMs=2000)
    client.go_live(seq=5)
    client.wait_sent("f.action === 'heartbeat' && f.mode === 'away'")
    client.js("() => window.dispatchEvent(new Event('keydown'))")
    client.wait_sent("f.action === 'heartbeat' && f.mode === 'active' && f.probe === true")


def test_a_presence_list_too_long_for_a_reply_is_read_over_http(client: Harness) -> None:
    """v1.2 (issue 15): a large workspace's sync holds part of the presence list and says
    ``more_presence``; the client reads the whole list over HTTP, and again after a probe's answer
    that says the same."""
    client.presence = [
        presence_event("presence.joined", u, "2026-01-01T00:00:01.000Z")["data"] for u in "abc"
    ]
    client.start()
    client.wait_sent("f.action === 'sync'")
    client.deliver(sync_reply(5, presence=client.presence[:1], more_presence=True))
    client.wait_state("live")
    users = "() => [...window.client.presence.values()].map((p) => p.user.id).sort()"
    client.page.wait_for_function("() => window.client.presence.size === 3", timeout=WAIT_MS)
    assert client.js(users) == ["a", "b", "c"] and client.presence_reads == 1
    client.presence = client.presence[:2]
    client.deliver(reply("heartbeat.ack", {"seq": 5, "presence": client.presence[:1], "more_presence": True}))
    client.page.wait_for_function("() => window.client.presence.size === 2", timeout=WAIT_MS)
    assert client.js(users) == ["a", "b"] and client.presence_reads == 2


def test_a_presence_batch_applies_each_change_in_order(client: Harness) -> None:
    client.start()
    client.go_live()
    users = "() => [...window.client.presence.values()].map((p) => p.user.id + ':' + p.status).sort()"
    client.deliver(presence_event("presence.joined", "bob", "2026-01-01T00:00:01.000Z"))
    client.deliver(presence_event("presence.joined", "cat", "2026-01-01T00:00:01.000Z"))
    batch = reply(
        "presence.batch",
        {
            "events": [
                {"type": e["type"], "user_id": e["user_id"], "data": e["data"]}
                for e in (
                    presence_event("presence.left", "bob", "2026-01-01T00:00:02.000Z"),
                    presence_event("presence.updated", "cat", "2026-01-01T00:00:02.000Z", status="away"),
                )
            ]
        },
    )
    client.deliver(batch)
    assert client.js(users) == ["cat:away"]


def test_a_change_nobody_answers_means_a_dead_socket_without_waiting_for_a_probe(client: Harness) -> None:
    client.start(heartbeatMs=60_000, heartbeatTimeoutMs=300, probeAfterMs=600_000, backoffBaseMs=100)
    client.go_live(seq=5)
    client.js("(id) => void window.client.updateTask(id, { status: 'done' })", TASK)
    client.wait_sent("f.action === 'task.update'", index=0)
    client.page.wait_for_function("window.__sockets[0].readyState === 3", timeout=WAIT_MS)
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    client.wait_sent("f.action === 'sync'", index=1)
    client.deliver(sync_reply(5), index=1)
    client.wait_sent("f.action === 'task.update'", index=1)  # re-sent on the new socket


# -- @collab/client: the API a framework subscribes to ----------------------------------------------
def test_mutations_resolve_with_the_committed_task_and_flush_waits_for_every_ack(client: Harness) -> None:
    client.start()
    client.go_live(seq=5)
    client.js("(id) => { window.__update = window.client.updateTask(id, { priority: 'high' }) }", TASK)
    client.js(
        "() => { window.__flushed = false; window.client.flush().then(() => { window.__flushed = true }) }"
    )
    client.wait_sent("f.action === 'task.update'")
    [update] = [f for f in client.sent() if f["action"] == "task.update"]
    assert client.js("window.client.pendingOps") == 1 and client.js("window.__flushed") is False
    committed = task(3, priority="high")
    client.deliver(
        reply("ack", {"request_id": update["request_id"], "ok": True, "task": committed, "seq": 6})
    )
    assert client.js("window.__update") == committed  # the promise's value is the committed task
    client.page.wait_for_function("window.__flushed === true", timeout=WAIT_MS)
    assert client.js("window.client.pendingOps") == 0


def test_an_unanswered_mutation_times_out_but_stays_queued(client: Harness) -> None:
    client.start(mutationTimeoutMs=200, heartbeatTimeoutMs=600_000)
    client.go_live(seq=5)
    outcome = "(id) => window.client.updateTask(id, { title: 'slow' }).then(() => 'ok', (e) => e.code)"
    assert client.js(outcome, TASK) == "timeout"
    assert client.js("window.client.pendingOps") == 1 and client.held()["title"] == "slow"  # type: ignore[index]


def test_snapshots_keep_the_identity_of_what_did_not_change(client: Harness) -> None:
    other = {**task(1), "id": "3c0c9a5e-41f2-4a55-a9a3-6f0a1c2d3e4f", "title": "Other"}
    client.tasks.append(other)
    client.start()
    client.go_live(seq=5)
    result = client.js(
        """async ([id, changed]) => {
          const c = window.client;
          const first = c.getSnapshot();
          let calls = 0;
          const unsubscribe = c.subscribe(() => { calls += 1 });
          const same = c.getSnapshot() === first && c.tasks() === first.tasks;
          window.__sockets.at(-1).deliver(changed);
          await new Promise((r) => setTimeout(r, 0));
          const second = c.getSnapshot();
          unsubscribe();
          window.__sockets.at(-1).deliver({ ...changed, seq: 7, data: { task: { ...changed.data.task, version: 4 } } });
          await new Promise((r) => setTimeout(r, 0));
          return {
            same, calls,
            newSnapshot: second !== first,
            untouchedKept: second.taskById.get(id) === first.taskById.get(id),
            changedReplaced: second.taskById.get(changed.data.task.id) !== first.taskById.get(changed.data.task.id),
            presenceKept: second.presence === first.presence,
            frozen: Object.isFrozen(second.tasks) && Object.isFrozen(second.taskById.get(id)),
          };
        }""",
        [other["id"], event(6, task(3, title="changed"))],
    )
    assert result == {
        "same": True,
        "calls": 1,  # one notification for the change, none after unsubscribe
        "newSnapshot": True,
        "untouchedKept": True,
        "changedReplaced": True,
        "presenceKept": True,
        "frozen": True,
    }


def test_a_title_over_the_schema_limit_is_refused_before_it_is_sent(client: Harness) -> None:
    client.start()
    client.go_live()
    outcome = client.js(
        """(id) => window.client.updateTask(id, { title: 'x'.repeat(205) })
             .then(() => 'ok', (e) => `${e.code}:${e.field}`)""",
        TASK,
    )
    assert outcome == "validation_error:title"
    assert not any(f["action"] == "task.update" for f in client.sent())
    assert client.held()["title"] == "Title"  # type: ignore[index]  # never shown, never rolled back
    # an emoji is one character, as the server counts: 200 of them are a valid title
    ok = "(id) => window.client.updateTask(id, { title: '😀'.repeat(200) }) && 'queued'"
    assert client.js(ok, TASK) == "queued"
    client.wait_sent("f.action === 'task.update'")


def test_a_burst_of_changes_is_paced_under_the_budget_not_refused(client: Harness) -> None:
    # Given a budget of 5 at once and 600 a minute (one every 100 ms)
    client.start(budget={"burst": 5, "perMinute": 600}, heartbeatTimeoutMs=600_000)
    client.go_live(seq=5)
    creates = "() => window.__sockets.at(-1).sent.filter((f) => f.action === 'task.create').length"
    # When 20 tasks are created at once, Then the burst goes out and the rest wait for tokens
    client.js("() => { for (let i = 0; i < 20; i++) window.client.createTask({ title: `t${i}` }) }")
    sent_at_once = client.js(creates)
    assert 4 <= sent_at_once <= 5  # the sync took one token (a control frame cannot wait)
    assert client.js("window.client.tasks().length") == 21  # every one is on the board already
    client.page.wait_for_function(f"({creates})() === 20", timeout=WAIT_MS)
    titles = [f["task"]["title"] for f in client.sent() if f["action"] == "task.create"]
    assert titles == [f"t{i}" for i in range(20)]  # in order


def test_an_expired_token_is_refreshed_through_get_token(client: Harness) -> None:
    # Given the server accepts only the fresh token, When the client starts with an old one
    client.accepted_token = "fresh"
    client.start(refreshing=True)
    client.go_live(seq=5)
    # Then the 401 made it ask for a fresh token, once, and the retry carried it
    assert client.js("window.__tokenReasons") == ["connect", "unauthorized"]
    assert [a.rsplit(".", 1)[1] for a in client.ticket_auth] == ["old", "fresh"]
    # And every reconnect asks again (a token that expired meanwhile is replaced)
    client.js("window.client.reconnectNow()")
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    assert client.js("window.__tokenReasons")[-1] == "connect"


def test_a_token_refused_after_refresh_is_unauthorized_until_reconnect_now(client: Harness) -> None:
    client.accepted_token = "never"
    client.start(refreshing=True)
    client.wait_state("unauthorized")
    client.page.wait_for_timeout(300)
    assert len(client.ticket_auth) == 2  # the token and its refresh: not retried for ever
    assert client.js("window.client.getSnapshot().connection.error.status") == 401
    # When the token works again, reconnectNow() leaves the final state
    client.accepted_token = ""
    client.js("window.client.reconnectNow()")
    client.go_live(seq=5)


@pytest.mark.parametrize(
    ("status", "state"),
    [(403, "forbidden"), (404, "forbidden"), (422, "invalid")],
)
def test_a_refusal_retrying_cannot_fix_is_final_and_specific(
    client: Harness, status: int, state: str
) -> None:
    client.ticket_status = [status] * 5
    client.start(firstRetryMs=1, backoffBaseMs=1)
    client.wait_state(state)
    client.page.wait_for_timeout(300)
    assert len(client.ticket_auth) == 1  # asked once: a 4xx is never retried by itself
    states = [e["detail"]["state"] for e in client.js("window.__events") if e["name"] == "state"]
    assert states == ["connecting", state]


def test_the_offline_event_drops_the_socket_at_once_and_online_reconnects(client: Harness) -> None:
    client.start(heartbeatTimeoutMs=600_000)
    client.go_live(seq=5)
    # When the browser says the network is gone, Then the badge says offline at once
    client.js("() => window.dispatchEvent(new Event('offline'))")
    assert client.state() == "offline"
    assert client.js("window.__sockets[0].readyState") == 3
    assert client.js("window.client.getSnapshot().connection.online") is False
    # And when it is back, the client reconnects at once and catches up
    client.js("() => window.dispatchEvent(new Event('online'))")
    client.page.wait_for_function("window.__sockets.length >= 2", timeout=WAIT_MS)
    client.go_live(seq=5)


def test_retries_stay_offline_without_flickering_through_connecting(client: Harness) -> None:
    client.start(firstRetryMs=1, backoffBaseMs=5, backoffCapMs=20)
    client.go_live(seq=5)
    client.ticket_status = [503] * 6  # the next six tickets fail
    client.js("window.client.reconnectNow()")
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    client.go_live(seq=5)
    states = [e["detail"]["state"] for e in client.js("window.__events") if e["name"] == "state"]
    assert states == ["connecting", "syncing", "live", "offline", "syncing", "live"]


def test_an_unauthorized_answer_refreshes_the_token_and_resends_the_change(client: Harness) -> None:
    client.start(refreshing=True, heartbeatTimeoutMs=600_000)
    client.go_live(seq=5)
    client.js("(id) => void window.client.updateTask(id, { title: 'after refresh' })", TASK)
    client.wait_sent("f.action === 'task.update'")
    [update] = [f for f in client.sent() if f["action"] == "task.update"]
    error = {"code": "unauthorized", "message": "token expired"}
    client.deliver(reply("ack", {"request_id": update["request_id"], "ok": False, "error": error}))
    client.page.wait_for_function("window.__sockets.length === 2", timeout=WAIT_MS)
    client.go_live(seq=5)
    client.wait_sent("f.action === 'task.update'")
    assert client.sent()[-1]["request_id"] == update["request_id"]  # the same change, not a new one
    assert "unauthorized" in client.js("window.__tokenReasons")
    assert client.held()["title"] == "after refresh"  # type: ignore[index]  # never rolled back


def test_a_refusal_nobody_awaits_is_an_event_not_an_unhandled_rejection(client: Harness) -> None:
    client.start()
    client.go_live()
    unhandled = client.js(
        """async (id) => {
          const seen = [];
          window.addEventListener('unhandledrejection', (e) => seen.push(String(e.reason)));
          window.client.updateTask(id, { title: '' });            // refused before sending
          window.client.updateTask(id, { priority: 'critical' });  // refused before sending
          window.client.markRead(['no-such-notification']);        // nothing to do
          await new Promise((r) => setTimeout(r, 50));
          return seen;
        }""",
        TASK,
    )
    assert unhandled == []
    rejected = [
        e["detail"]["error"]["field"] for e in client.js("window.__events") if e["name"] == "rejected"
    ]
    assert rejected == ["title", "priority"]
