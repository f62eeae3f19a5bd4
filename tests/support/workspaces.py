"""Workspaces for load and storm tests, written straight to Postgres (set-up is not what is
measured), and what to read back from Postgres and Redis to check that nothing was lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.board_client import BoardClient


@dataclass
class Member:
    user_id: str
    token: str


@dataclass
class Workspace:
    workspace_id: str
    members: list[Member]
    tasks: dict[str, dict[str, Any]]
    last_seq: int


def make_workspaces(
    db_url: str, settings: Any, *, workspaces: int, members: int, tasks: int, tag: str
) -> list[Workspace]:
    """Users, workspaces, memberships and tasks, written directly (set-up is not what is measured);
    tasks go through ``collab.domain.tasks.create`` so their versions, seqs and activity rows are real."""
    from collab.adapters.postgres.database import Database
    from collab.auth.tokens import issue_access_token
    from collab.domain import tasks as task_service
    from collab.protocol.client_frames import TaskDraft

    db = Database(db_url)
    out = []
    try:
        for w in range(workspaces):
            uids = [f"{tag}-w{w:02d}-u{u:02d}" for u in range(members)]

            def setup(cur: Any, uids: list[str] = uids, w: int = w) -> str:
                cur.executemany(
                    "INSERT INTO users (id, display_name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(u, u) for u in uids],
                )
                wid = cur.execute(
                    "INSERT INTO workspaces (name, created_by) VALUES (%s, %s) RETURNING id",
                    (f"{tag} {w}", uids[0]),
                ).fetchone()["id"]
                cur.executemany(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                    [(wid, u, "owner" if i == 0 else "member") for i, u in enumerate(uids)],
                )
                return str(wid)

            wid = db.run(setup)
            made = {}
            for t in range(tasks):
                task = task_service.create(db, uids[0], TaskDraft(title=f"task {t}"), workspace_id=wid).task
                made[str(task["id"])] = task
            last = db.run(
                lambda cur, wid=wid: cur.execute(
                    "SELECT last_seq FROM workspaces WHERE id = %s", (wid,)
                ).fetchone()["last_seq"]
            )
            team = [Member(u, issue_access_token(settings, u, name=u)) for u in uids]
            out.append(Workspace(wid, team, made, int(last)))
    finally:
        db.close()
    return out


def workspace_seq(db_url: str, workspace_ids: list[str]) -> dict[str, int]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id::text, last_seq FROM workspaces WHERE id = ANY(%s::uuid[])", (workspace_ids,)
        ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def unregistered(redis_url: str, clients: list[BoardClient]) -> list[str]:
    """Users whose client is live but who have no registered connection: the server fans nothing
    out to them (they are "deaf" until their next heartbeat is refused and they reconnect)."""
    import redis

    from collab.adapters.redis import keys

    r = redis.Redis.from_url(redis_url)
    try:
        return [c.user_id for c in clients if c.state == "live" and not r.hlen(keys.user(c.user_id, "conns"))]
    finally:
        r.close()
