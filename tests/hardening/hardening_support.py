"""Shared by the hardening suites: state fingerprints, contract error codes, loading the integration
helpers, and a client that applies server frames the way the browser client does."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Contract 3.3, plus v1.1's conflict (docs/protocol.md).
CONTRACT_CODES = frozenset(
    {
        "validation_error",
        "unauthorized",
        "forbidden",
        "not_found",
        "rate_limited",
        "payload_too_large",
        "internal",
        "conflict",
    }
)
INPUT_CODES = frozenset({"validation_error", "payload_too_large"})
TASK_FIELDS = ("title", "description", "status", "priority", "due_date", "assigned_to")


def load_integration_module(name: str) -> ModuleType:
    """tests/integration/<name>.py, imported by path under a name of its own (that folder is not a
    package, and pytest may or may not have put it on sys.path in this session)."""
    alias = f"collab_hardening_{name}"
    module = sys.modules.get(alias)
    if module is None:
        spec = importlib.util.spec_from_file_location(alias, ROOT / "tests" / "integration" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        spec.loader.exec_module(module)
    return module


# -- fingerprints of all state ------------------------------------------------------------------
# Any committed insert, update or delete moves a table's row count or its newest row version (xmin:
# every write makes a new version with the writer's transaction id), so this changes on any write.
_PG_FINGERPRINT = (
    "SELECT concat_ws('#', "
    + ", ".join(
        f"(SELECT count(*) || '/' || coalesce(max(xmin::text::bigint), 0) FROM {table})"
        for table in ("users", "workspaces", "workspace_members", "tasks", "activity", "notifications")
    )
    + ") AS h"
)

# Every key with its DUMP (type, value and scores; not the TTL), hashed in Redis in one round trip.
# Returns {hash of everything, hash without the keys whose names start with one of ARGV}.
_REDIS_FINGERPRINT = """
local keys = redis.call('KEYS', '*')
table.sort(keys)
local all, rest = {}, {}
for _, k in ipairs(keys) do
  local d = redis.call('DUMP', k) or ''
  all[#all + 1] = k .. '=' .. d
  local skip = false
  for _, prefix in ipairs(ARGV) do
    if string.sub(k, 1, #prefix) == prefix then skip = true end
  end
  if not skip then rest[#rest + 1] = k .. '=' .. d end
end
return {redis.sha1hex(table.concat(all, '\\0')), redis.sha1hex(table.concat(rest, '\\0'))}
"""


class Fingerprint:
    """``take()`` -> (postgres hash, redis hash, redis hash without the excluded prefixes)."""

    def __init__(self, rt: Any, exclude_prefixes: list[str]) -> None:
        import psycopg

        self.rt = rt
        self.exclude = exclude_prefixes
        self._script = rt.store.r.register_script(_REDIS_FINGERPRINT)
        self._pg = psycopg.connect(rt.settings.dsn, autocommit=True)  # one round trip per look

    def take(self) -> tuple[str, str, str]:
        row = self._pg.execute(_PG_FINGERPRINT).fetchone()
        assert row is not None
        everything, rest = self._script(keys=[], args=self.exclude)
        return str(row[0]), everything.decode(), rest.decode()

    def close(self) -> None:
        self._pg.close()


# -- a client as the browser's: applies task events by version, syncs from its last seq -----------
class Client:
    """One browser tab: a connection, the tasks it holds, and the seqs it applied.

    Task events (and the ``ack`` of its own edits) are applied only when their ``version`` is higher
    than the one held (contract 3.4); ``sync`` asks for everything after the last contiguous seq and
    repeats while the reply is paged. ``resync: true`` reloads the workspace's tasks (as over HTTP).
    """

    def __init__(self, world: Any, user: str, wid: str) -> None:
        self.world, self.user, self.wid = world, user, wid
        self.tasks: dict[str, dict[str, Any]] = {}
        self.seqs: set[int] = set()
        self.contiguous = 0
        self.read = 0  # posts of this connection already applied
        self.conn: Any = None
        self.frames_seen: list[dict[str, Any]] = []

    # connection
    def connect(self) -> None:
        self.conn = self.world.connect(self.user, self.wid, sync=False)
        self.read = 0

    def send(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        reply = self.conn.send(frame)
        if reply is not None:
            self.frames_seen.append(reply)
            if reply["type"] == "ack" and reply["data"].get("ok") and "task" in reply["data"]:
                self.apply_task(reply["data"]["task"], reply["data"].get("seq"))
        return reply

    # applying
    def _mark(self, seq: int | None) -> None:
        if seq is None:
            return
        self.seqs.add(int(seq))
        while self.contiguous + 1 in self.seqs:
            self.contiguous += 1

    def apply_task(self, task: dict[str, Any], seq: int | None) -> None:
        held = self.tasks.get(task["id"])
        if held is None or task["version"] > held["version"]:
            self.tasks[task["id"]] = task
        self._mark(seq)

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["type"].startswith("task."):
            self.apply_task(frame["data"]["task"], frame.get("seq"))
        elif "seq" in frame:
            self._mark(frame["seq"])

    def pump(self) -> list[dict[str, Any]]:
        """Apply what the Management API delivered to this connection since the last pump."""
        new = self.conn.received()[self.read :]
        self.read += len(new)
        for f in new:
            self.apply(f)
        self.frames_seen.extend(new)
        return new

    def sync(self) -> dict[str, Any]:
        """``sync`` from the last contiguous seq until caught up; returns the last reply."""
        self.pump()
        while True:
            reply = self.send({"action": "sync", "since": self.contiguous})
            assert reply is not None and reply["type"] == "sync", reply
            data = reply["data"]
            if data["resync"]:
                self.reload()
                self.seqs = set(range(1, data["seq"] + 1))
                self.contiguous = data["seq"]
                return reply
            for ev in data["events"]:
                assert ev["workspace_id"] == self.wid
                self.apply(ev)
            if not data["events"] or self.contiguous >= data["seq"]:
                return reply

    def reload(self) -> None:
        for t in db_tasks(self.world.rt, self.wid).values():
            self.apply_task(t, None)

    def visible(self) -> dict[str, dict[str, Any]]:
        """The tasks as the board shows them: id -> writable fields, version and deletion."""
        return {tid: _visible(t) for tid, t in self.tasks.items()}


def _visible(t: dict[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in (*TASK_FIELDS, "version", "deleted")}


def db_tasks(rt: Any, wid: str) -> dict[str, dict[str, Any]]:
    """Every task of a workspace as the wire shows it, tombstones included."""
    from collab.domain.tasks import COLUMNS
    from collab.models import Task

    rows = rt.db.run(
        lambda cur: cur.execute(f"SELECT {COLUMNS} FROM tasks WHERE workspace_id = %s", (wid,)).fetchall()
    )
    return {str(r["id"]): Task.model_validate(r).wire() for r in rows}


def db_visible(rt: Any, wid: str) -> dict[str, dict[str, Any]]:
    return {tid: _visible(t) for tid, t in db_tasks(rt, wid).items()}


def activity(rt: Any, wid: str) -> list[dict[str, Any]]:
    return rt.db.run(
        lambda cur: cur.execute(
            "SELECT seq, actor_id, type, payload FROM activity WHERE workspace_id = %s ORDER BY seq", (wid,)
        ).fetchall()
    )


def rid() -> str:
    return str(uuid.uuid4())


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
