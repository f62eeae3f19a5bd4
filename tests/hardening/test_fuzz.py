"""Fuzzing the ``$default`` route: generated and mutated frames through functions/message/handler.py.

How the 10,000 is reached: two tests (so ``pytest -n 2`` runs them side by side), each a hypothesis
run of 1,000 examples of ``BATCH`` = 5 frames (``FRAMES_PER_TEST`` = 5,000), all sent on one
connection of one world that lives for the whole run; each test counts the frames it sent and
asserts the count at the end.
``FUZZ_FRAMES`` in the environment scales both (``FUZZ_FRAMES=100000`` searches deeper).

Every frame starts as a valid frame drawn from strategies that mirror the protocol (contract 3.2)
and, most of the time, is then mutated: fields dropped, renamed or retyped, UUIDs corrupted, huge
strings, control characters, nested junk, unicode (escaped lone surrogates included), numbers out
of range, request_ids reused, unknown actions, and on the text itself: truncation, non-JSON bytes,
duplicate keys, raw NaN/Infinity, nesting deeper than the JSON parser goes.

For every frame:
  * the handler returns ``statusCode`` 200 and a JSON body that can go out as a WebSocket text
    frame (valid UTF-8), or no body for an accepted ``presence.update``; no exception escapes;
  * a frame the protocol refuses (not JSON, not an object, unknown action, bad fields, too large) is
    refused with ``validation_error`` / ``payload_too_large`` (an ``error`` frame or an ``ack`` with
    ``ok: false``), and Postgres and Redis are as before (fingerprints of every table and every
    key) but for the user's rate window: every frame counts against the budget (issue 13);
  * a well-formed frame the domain refuses (unknown task, conflict, assignee not a member, ...) gets
    an ``ack`` / ``error`` with a contract code and changes nothing in Postgres; in Redis only its
    user's rate-limit window and request records may change (the frame counts, and the answer is
    remembered for its request_id);
  * a mutation mark the generator knows breaks the frame (a required field dropped, a corrupted
    UUID, a control character, ...) must be refused: the generator's oracle agrees with the server;
  * a request_id seen before gets the first answer again, byte for byte.

The rate limit (100 frames per minute per user) must not interfere: the world's clock moves on by
61 s every 90 frames, and a ``rate_limited`` reply fails the test.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from hardening_support import CONTRACT_CODES, INPUT_CODES, Fingerprint, db_tasks
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

FRAMES_PER_TEST = int(os.environ.get("FUZZ_FRAMES", "10000")) // 2
FRAMES_PER_MINUTE = 90  # under the limit of 100: the clock moves on a minute after this many
FORGET_REQUESTS_EVERY = 450

REQUIRED = {
    "heartbeat": {"action"},
    "sync": {"action"},
    "task.create": {"action", "request_id", "task"},
    "task.update": {"action", "request_id", "task_id", "changes"},
    "task.delete": {"action", "request_id", "task_id"},
    "notification.read": {"action", "request_id", "notification_ids"},
    "presence.update": {"action", "status"},
}
OPTIONAL = {"sync": {"since"}, "task.update": {"base_version"}, "presence.update": {"viewing"}}
FIELDS = {action: required | OPTIONAL.get(action, set()) for action, required in REQUIRED.items()}
SUBFIELDS = {
    "task": {"id", "title", "description", "status", "priority", "due_date", "assigned_to"},
    "changes": {"title", "description", "status", "priority", "due_date", "assigned_to"},
}
UUID_FIELDS = {"request_id", "task_id", "viewing", "id"}
CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)]
TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\t")


# -- valid frames ------------------------------------------------------------------------------
def valid_frames(task_ids: list[str], notification_ids: list[str], rid_pool: list[str]) -> Any:
    uuids = st.uuids().map(str)
    task_ref = st.sampled_from(task_ids) | uuids
    request_id = uuids | st.sampled_from(rid_pool)
    title = st.text(TEXT, min_size=1, max_size=24).filter(lambda s: bool(s.strip())) | st.sampled_from(
        ["x" * 200, "é" * 200, "\U0001f600" * 200, " x\t\n", "<b>bold</b>"]  # the limits, exactly
    )
    description = st.text(TEXT, max_size=40) | st.sampled_from(["", "d" * 10_000, "line\nline"])
    status = st.sampled_from(["todo", "in_progress", "done"])
    priority = st.sampled_from(["low", "medium", "high", "urgent"])
    due = st.none() | st.dates(min_value=date(1, 1, 1)).map(date.isoformat)
    assignee = st.none() | st.sampled_from(["ann", "bob", "zed"])  # zed is not a member
    draft = st.fixed_dictionaries(
        {"title": title},
        optional={
            "id": uuids | st.sampled_from(task_ids),
            "description": description,
            "status": status,
            "priority": priority,
            "due_date": due,
            "assigned_to": assignee,
        },
    )
    changes = st.fixed_dictionaries(
        {},
        optional={
            "title": title,
            "description": description,
            "status": status,
            "priority": priority,
            "due_date": due,
            "assigned_to": assignee,
        },
    ).filter(bool)
    return st.one_of(
        st.just({"action": "heartbeat"}),
        st.fixed_dictionaries(
            {"action": st.just("sync")}, optional={"since": st.none() | st.integers(0, 10**6)}
        ),
        st.fixed_dictionaries({"action": st.just("task.create"), "request_id": request_id, "task": draft}),
        st.fixed_dictionaries(
            {
                "action": st.just("task.update"),
                "request_id": request_id,
                "task_id": task_ref,
                "changes": changes,
            },
            optional={"base_version": st.integers(1, 30)},
        ),
        st.fixed_dictionaries(
            {"action": st.just("task.delete"), "request_id": request_id, "task_id": uuids}
        ),  # random ids: the known tasks stay for the updates
        st.fixed_dictionaries(
            {
                "action": st.just("notification.read"),
                "request_id": request_id,
                "notification_ids": st.lists(
                    st.sampled_from(notification_ids) | uuids, min_size=1, max_size=5
                ),
            }
        ),
        st.fixed_dictionaries(
            {"action": st.just("presence.update"), "status": st.sampled_from(["active", "away"])},
            optional={"viewing": st.none() | task_ref},
        ),
    )


# -- mutations ---------------------------------------------------------------------------------
@dataclass
class Raw:
    """A JSON token json.dumps cannot write (NaN, 1e400, a huge int, an escaped lone surrogate)."""

    token: str


@dataclass
class Mutated:
    obj: Any
    breaks: bool = False  # the last mutation certainly makes the frame invalid
    text: str | None = None  # set once a mutation worked on the JSON text itself
    log: list[str] = field(default_factory=list)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into the frame (dicts and lists), excluding the root."""
    out: list[tuple[Any, ...]] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(paths(v, (*prefix, k)))
    return out


def get_parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for k in path[:-1]:
        obj = obj[k]
    return obj


def is_required(frame: Any, path: tuple[Any, ...]) -> bool:
    if not isinstance(frame, dict) or not isinstance(frame.get("action"), str):
        return False
    if len(path) == 1:
        return path[0] in REQUIRED.get(frame["action"], set())
    return path == ("task", "title")


def declared(frame: Any, path: tuple[Any, ...]) -> bool:
    """The path is (inside) a field the frame's action declares: a value the parser checks."""
    action = frame.get("action") if isinstance(frame, dict) else None
    if not isinstance(action, str) or action not in FIELDS or path[0] not in FIELDS[action]:
        return False
    if len(path) >= 2 and path[0] in SUBFIELDS and isinstance(frame[path[0]], dict):
        return path[1] in SUBFIELDS[path[0]]
    return True


def in_strict_object(path: tuple[Any, ...]) -> bool:
    """Keys of ``task`` and ``changes`` are checked (extra keys refused); top-level ones are not."""
    return len(path) == 2 and path[0] in ("task", "changes")


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
bad_numbers = st.sampled_from(
    [-1, 0, -(2**63), 2**63, 2**64 + 1, 10**30, 1.5, -0.0, 1e308, True, "12", "", "0x10"]
) | st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("9" * 5000)])
unicode_bits = st.sampled_from(
    [
        "\u202e",
        "\u200b",
        "\ufeff",
        "😀",
        "\U0010ffff",
        "é",
        "\u0301",
        "\U0001d518\U0001d52b\U0001d526",  # mathematical fraktur
        "\u2028",
        "\x85",
        "中文",
        "<script>",
        "'; DROP TABLE tasks; --",
        "%s",
        "{}",
        "\\",
        '"',
    ]
)


# Strategies built once: a strategy made per draw (a new .filter each time) costs more than the frame.
short_text = st.text(max_size=10)
unknown_actions = (
    st.sampled_from(["", "task.created", "TASK.CREATE", "task.create ", "delete", "sync\x00"])
    | st.text(max_size=12).filter(lambda s: s not in REQUIRED)
    | junk.filter(lambda v: not isinstance(v, str))
)
_JUNK_BY_TYPE: dict[type, Any] = {}


def junk_other_than(kind: type) -> Any:
    if kind not in _JUNK_BY_TYPE:
        _JUNK_BY_TYPE[kind] = junk.filter(lambda v: type(v) is not kind)
    return _JUNK_BY_TYPE[kind]


def corrupt_uuid(draw: Any) -> str:
    u = str(uuid.uuid4())
    how = draw(st.sampled_from(["short", "long", "letter", "word", "empty", "spaces", "braces-bad"]))
    return {
        "short": u[:-1],
        "long": u + "0",
        "letter": u[:5] + "g" + u[6:],
        "word": "not-a-uuid",
        "empty": "",
        "spaces": f" {u[:-2]} ",
        "braces-bad": "{" + u,
    }[how]


def mutate(draw: Any, m: Mutated) -> None:
    """Apply one structural mutation to ``m.obj``."""
    kind = draw(
        st.sampled_from(
            [
                "drop",
                "rename",
                "retype",
                "bad_uuid",
                "huge",
                "control",
                "junk",
                "unicode",
                "number",
                "unknown_action",
                "extra_top",
                "wrong_top",
            ]
        )
    )
    obj = m.obj
    every = paths(obj) if isinstance(obj, dict | list) else []
    m.log.append(kind)
    if kind == "wrong_top" or not every:
        m.obj = draw(st.lists(junk, max_size=3) | st.text(max_size=10) | st.integers() | st.none())
        m.breaks = True
        return
    if kind == "unknown_action":
        if isinstance(obj, dict):
            obj["action"] = draw(unknown_actions)
            m.breaks = True
        return
    if kind == "extra_top":
        if isinstance(obj, dict):
            obj[f"x-{draw(short_text)}"] = draw(junk)
            m.breaks = False
        return
    path = draw(st.sampled_from(every))
    parent, key = get_parent(obj, path), path[-1]
    value = parent[key]
    if kind == "drop":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        m.breaks = is_required(obj, path)
    elif kind == "rename":
        if isinstance(parent, dict):
            new = f"{key}_" if draw(st.booleans()) else draw(st.text(min_size=1, max_size=12))
            if new in parent:
                return
            parent[new] = parent.pop(key)
            m.breaks = is_required(obj, path) or in_strict_object((*path[:-1], new))
    elif kind == "retype":
        parent[key] = draw(junk_other_than(type(value)))
        m.breaks = False  # lax parsing may accept some ("5" for an int): the parser decides
    elif kind == "bad_uuid":
        parent[key] = corrupt_uuid(draw)
        m.breaks = declared(obj, path) and (
            path[-1] in UUID_FIELDS or (len(path) == 2 and path[0] == "notification_ids")
        )
    elif kind == "huge":
        ch = draw(st.sampled_from(["a", "é", "😀", " ", "\n"]))
        parent[key] = ch * draw(st.integers(10_001, 40_000))
        m.breaks = declared(obj, path)  # no field of any frame takes a string this long
    elif kind == "control":
        s = value if isinstance(value, str) else "x"
        i = draw(st.integers(0, len(s)))
        parent[key] = s[:i] + draw(st.sampled_from(CONTROL)) + s[i:]
        m.breaks = declared(obj, path)  # every field of every frame refuses C0 controls and DEL
    elif kind == "junk":
        deep = draw(st.integers(1, 60))
        parent[key] = draw(junk) if draw(st.booleans()) else _nest(deep, draw(st.sampled_from(["[]", "{}"])))
        m.breaks = False
    elif kind == "unicode":
        s = value if isinstance(value, str) else ""
        i = draw(st.integers(0, len(s)))
        bit: Any = draw(unicode_bits | st.just(Raw('"\\ud800"')) | st.just(Raw('"a\\udfffb"')))
        parent[key] = bit if isinstance(bit, Raw) else s[:i] + bit + s[i:]
        m.breaks = False
    elif kind == "number":
        parent[key] = draw(bad_numbers)
        m.breaks = False


def _nest(depth: int, kind: str) -> Any:
    out: Any = [] if kind == "[]" else {}
    for _ in range(depth):
        out = [out] if kind == "[]" else {"k": out}
    return out


def render(m: Mutated) -> str:
    """The frame as JSON text, with the raw tokens spliced in."""
    raws: list[str] = []

    def default(o: Any) -> Any:
        if isinstance(o, Raw):
            raws.append(o.token)
            return f"__raw_{len(raws) - 1}__"
        raise TypeError(type(o))

    text = json.dumps(m.obj, default=default, ensure_ascii=False)
    for i, token in enumerate(raws):
        text = text.replace(f'"__raw_{i}__"', token)
    return text


def text_mutation(draw: Any, m: Mutated, text: str) -> str:
    kind = draw(st.sampled_from(["truncate", "garbage", "deep", "dup_key", "prefix", "bom", "raw_nan"]))
    m.log.append(kind)
    if kind == "truncate":
        m.breaks = True
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "garbage":
        m.breaks = True
        raw = draw(st.binary(min_size=0, max_size=200))
        return raw.decode("latin-1")
    if kind == "deep":
        m.breaks = True  # deeper than the JSON parser goes: it must be refused, not crash
        n = draw(st.integers(2_000, 20_000))  # past 32 KB too: the too-large path parses it
        return '{"action":"sync","since":' + "[" * n + "]" * n + "}"
    if kind == "dup_key":
        m.breaks = False
        other = draw(st.sampled_from(list(REQUIRED)))
        # the last of duplicate keys wins: the frame now says another action than its fields
        return text[:-1] + f',"action":"{other}"}}' if text.startswith("{") and len(text) > 2 else text
    if kind == "prefix":
        m.breaks = True
        return draw(st.sampled_from(["x", "]", "//", "\x00", "{{"])) + text
    if kind == "bom":
        m.breaks = False  # json.loads refuses a BOM in a str: the parser decides
        return "\ufeff" + text
    m.breaks = False
    return text.replace("null", "NaN", 1)


BATCH = 5  # frames per hypothesis example: variants of one valid frame


@st.composite
def batches(draw: Any, valid: Any) -> list[Mutated]:
    """One valid frame and ``BATCH`` variants of it: as is, or mutated 1-3 times (and sometimes its
    text mangled); each variant keeps the request_id or draws a new one."""
    base = draw(valid)
    out = []
    for _ in range(BATCH):
        m = Mutated(json.loads(json.dumps(base)))
        if isinstance(m.obj, dict) and "request_id" in m.obj and draw(st.booleans()):
            m.obj["request_id"] = str(draw(st.uuids()))
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
            mutate(draw, m)
        text = render(m)
        if draw(st.integers(0, 9)) == 0:
            text = text_mutation(draw, m, text)
        m.text = text
        out.append(m)
    return out


# -- the oracle of the protocol parser ---------------------------------------------------------
def statically_valid(body: str) -> bool:
    """What the protocol alone says of a frame: size, JSON, action, fields (and an update changes
    at least one field, never a required one to null)."""
    from collab.errors import CollabError
    from collab.protocol import client_frames

    try:
        msg = client_frames.parse(client_frames.decode(body))
        if msg.action == "task.update" and not msg.changes.patch():
            return False
    except (client_frames.BadFrame, CollabError):
        return False
    return True


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Run:
    world: Any
    conn: Any
    fp: Fingerprint
    task_ids: list[str]
    notification_ids: list[str]
    sent: int = 0
    before: tuple[str, str, str] | None = None
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    def send(self, m: Mutated) -> None:
        from collab.protocol import client_frames
        from functions.message.handler import handler

        if self.sent and self.sent % FRAMES_PER_MINUTE == 0:
            self.world.rt.clock.advance(61)
        if self.sent and self.sent % FORGET_REQUESTS_EVERY == 0:
            # as if the hour of request_id memory had passed: keeps the Redis fingerprint small
            r = self.world.rt.store.r
            stale = list(r.scan_iter(match=f"{self.fp.exclude[1]}*", count=1000))
            if stale:
                r.delete(*stale)
            self.answers.clear()
            self.before = None
        assert m.text is not None
        body = m.text
        before = self.before or self.fp.take()
        ok_static = statically_valid(body)
        if m.breaks:
            assert not ok_static, f"the generator broke this frame ({m.log}) but the protocol accepts it"

        # When the frame reaches the handler
        out = handler(self.conn.event("message", body), self.world.context)
        self.sent += 1

        # Then: 200, and a JSON body that can be sent as a text frame (or none for presence.update)
        assert isinstance(out, dict) and out.get("statusCode") == 200, out
        after = self.fp.take()
        self.before = after
        if "body" not in out:
            assert ok_static and client_frames.decode(body)["action"] == "presence.update", out
            self._count("presence")
            return
        raw = out["body"]
        assert isinstance(raw, str)
        raw.encode("utf-8")  # a lone surrogate here could not go out as a WebSocket text frame
        reply = json.loads(raw)
        assert reply["workspace_id"] == self.conn.wid and reply["user_id"] == self.conn.user
        kind, data = reply["type"], reply["data"]
        refused = kind == "error" or (kind == "ack" and data["ok"] is False)
        code = (
            (data.get("code") if kind == "error" else (data.get("error") or {}).get("code"))
            if refused
            else None
        )
        if refused:
            assert code in CONTRACT_CODES, reply
            assert code != "rate_limited", "the fuzz keeps under the rate limit"
            assert code != "internal", reply  # the services are up: nothing may fail inside
            message = data.get("message") if kind == "error" else data["error"].get("message")
            assert isinstance(message, str) and message, reply
        self._count(code or kind)

        if not ok_static:
            # a frame the protocol refuses: a contract error and no change anywhere but the user's
            # rate window (every frame counts against the budget, valid or not: issue 13)
            assert refused and code in INPUT_CODES, (m.log, body[:300], reply)
            assert (after[0], after[2]) == (before[0], before[2]), (
                f"refused frame changed state: {m.log} {body[:300]!r}"
            )
            return
        obj = client_frames.decode(body)  # as the server reads it (a leading BOM, say)
        action = obj["action"]
        expected = {"heartbeat": "heartbeat.ack", "sync": "sync"}.get(action, "ack")
        assert kind in (expected, "error"), reply
        if action in client_frames.MUTATIONS:
            rid = str(uuid.UUID(obj["request_id"]))
            assert kind == "ack" and data["request_id"] == obj["request_id"], reply
            if rid in self.answers:
                assert data == self.answers[rid], "a repeated request_id gets the first answer"
                assert after[0] == before[0] and after[2] == before[2]  # and changes nothing
                return
            self.answers[rid] = data
        if refused:
            # well-formed but refused by the domain: Postgres as before; in Redis only this user's
            # rate-limit window and request records
            assert after[0] == before[0], f"refused frame changed Postgres: {body[:300]!r} {reply}"
            assert after[2] == before[2], f"refused frame changed Redis: {body[:300]!r} {reply}"
        elif kind == "ack" and "task" in data:
            # accepted: the acknowledged task is in the database as acknowledged
            stored = db_tasks(self.world.rt, self.conn.wid).get(data["task"]["id"])
            assert stored is not None and stored["version"] >= data["task"]["version"]

    def _count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1


@pytest.fixture
def run(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    import math

    from collab.adapters.redis import keys
    from collab.domain import tasks, usage

    # The cost meter counts accepted frames, repeats included (API Gateway bills them): accounting,
    # not state. It writes nothing during the run, so "changes nothing" keeps its meaning here.
    monkeypatch.setattr(usage, "FLUSH_S", math.inf)

    wid = world.workspace("ann", "bob")
    ann = world.connect("ann", wid)
    task_ids = [ann.create(f"known {i}")["data"]["task"]["id"] for i in range(5)]
    # bob assigns two tasks to ann: ann has notifications to read
    for tid in task_ids[:2]:
        tasks.update(world.rt.db, "bob", tid, {"assigned_to": "ann"}, scope=wid)
    notes = world.rt.db.run(
        lambda cur: cur.execute("SELECT id FROM notifications WHERE user_id = 'ann'").fetchall()
    )
    world.rt.clock.advance(61)
    # Keys that expire in real time while the run goes on (the connection-attempt window, the used
    # ticket) would change the fingerprint under an innocent frame: they live as long as the run.
    r = world.rt.store.r
    for key in [keys.user("ann", "connrl"), *r.scan_iter(match=keys.ticket("*"))]:
        r.persist(key)
    fp = Fingerprint(world.rt, [keys.user("ann", "rl"), keys.user("ann", "req:")])
    yield Run(world, ann, fp, task_ids, [str(n["id"]) for n in notes])
    fp.close()


RID_POOL = [str(uuid.UUID(int=i)) for i in range(1, 6)]  # request_ids every run reuses


def fuzz(run: Run, seed_label: str) -> None:
    valid = valid_frames(run.task_ids, run.notification_ids, RID_POOL)

    @settings(
        max_examples=-(-FRAMES_PER_TEST // BATCH),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(valid))
    def some_frames(batch: list[Mutated]) -> None:
        for m in batch:
            run.send(m)

    some_frames()
    print(f"{seed_label}: {run.sent} frames, replies: {sorted(run.outcomes.items())}")
    assert run.sent >= FRAMES_PER_TEST, f"{seed_label}: sent {run.sent} frames"
    # the mix was really a mix: valid frames accepted, and each kind of refusal seen
    assert run.outcomes.get("ack", 0) > 0 and run.outcomes.get("sync", 0) > 0
    assert run.outcomes.get("validation_error", 0) > FRAMES_PER_TEST // 10
    assert run.outcomes.get("payload_too_large", 0) > 0


def test_fuzzed_frames_first_half(run):
    fuzz(run, "first half")


def test_fuzzed_frames_second_half(run):
    fuzz(run, "second half")
