"""The demo workspace of ``collab dev``, created through the HTTP API handler like any client would.

Going through ``functions/api/handler.py`` (not SQL) means the demo data is exactly what the API
makes, users are created the way the API creates them (on first sight of their token), and a
broken API shows up the moment someone runs ``collab dev``. Idempotent: an existing "Demo board"
of the demo owner is reused and only missing members are added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from collab.auth.tokens import issue_access_token
from collab_dev.emulator import lambda_events

if TYPE_CHECKING:
    from collab.config import Settings
    from collab_dev.emulator.local_gateway import LocalGateway

WORKSPACE_NAME = "Demo board"
TOKEN_TTL_S = 12 * 3600  # the printed links work for a working day


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    name: str
    email: str
    role: str


USERS = (
    DemoUser("demo-alice", "Alice Martin", "alice@example.test", "owner"),
    DemoUser("demo-bob", "Bob Chen", "bob@example.test", "member"),
    DemoUser("demo-carol", "Carol Diaz", "carol@example.test", "admin"),
)
STARTER_TASKS = (
    {"title": "Try editing this task in two windows", "priority": "high"},
    {"title": "Assign a task to Bob and watch his notifications", "status": "in_progress"},
    {"title": "Close a window: presence updates at once", "status": "done", "priority": "low"},
)


class SeedError(Exception):
    """The HTTP API did not answer as expected (it may not exist yet)."""


@dataclass(frozen=True, slots=True)
class Demo:
    workspace_id: str
    tokens: dict[str, str]  # user id -> access token
    created: bool

    def links(self, base_url: str) -> list[tuple[DemoUser, str]]:
        return [
            (u, f"{base_url}/?{urlencode({'token': self.tokens[u.user_id], 'workspace': self.workspace_id})}")
            for u in USERS
        ]


async def call(
    gateway: LocalGateway, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One HTTP API request, straight to the handler (no socket): status and decoded JSON."""
    if gateway.http_api is None:
        raise SeedError("no HTTP API handler is configured")
    raw_path, _, query = path.partition("?")
    event = lambda_events.http_api(
        method=method,
        path=raw_path,
        raw_query=query,
        headers=[("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")],
        body=b"" if body is None else json.dumps(body).encode(),
        source_ip="127.0.0.1",
        domain_name=f"127.0.0.1:{gateway.port}",
    )
    try:
        result = lambda_events.http_api_result(await gateway.invoke(gateway.http_api, event))
    except Exception as exc:  # a missing or crashing handler: report it, retry later
        raise SeedError(f"{method} {raw_path}: the handler failed ({type(exc).__name__}: {exc})") from exc
    try:
        data = json.loads(result.body) if result.body else None
    except ValueError:
        data = None
    return result.status, data


async def _expect(gateway: LocalGateway, token: str, method: str, path: str, body: Any = None) -> Any:
    status, data = await call(gateway, token, method, path, body)
    if not 200 <= status < 300:
        detail = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
        raise SeedError(
            f"{method} {path.partition('?')[0]} answered {status}" + (f": {detail}" if detail else "")
        )
    return data


async def seed(gateway: LocalGateway, settings: Settings) -> Demo:
    tokens = {
        u.user_id: issue_access_token(settings, u.user_id, email=u.email, name=u.name, ttl_s=TOKEN_TTL_S)
        for u in USERS
    }
    owner = USERS[0]
    for user in USERS:  # first sight of each token creates the user
        await _expect(gateway, tokens[user.user_id], "GET", "/workspaces")
    page = await _expect(gateway, tokens[owner.user_id], "GET", "/workspaces?limit=100")
    existing = [w for w in page.get("items", []) if w.get("name") == WORKSPACE_NAME]
    created = not existing
    if existing:
        wid = str(existing[0]["id"])
    else:
        wid = str(
            (await _expect(gateway, tokens[owner.user_id], "POST", "/workspaces", {"name": WORKSPACE_NAME}))[
                "id"
            ]
        )
    members = await _expect(gateway, tokens[owner.user_id], "GET", f"/workspaces/{wid}/members")
    present = {m.get("user_id") for m in members.get("items", [])}
    for user in USERS[1:]:
        if user.user_id not in present:
            body = {"user_id": user.user_id, "role": user.role}
            await _expect(gateway, tokens[owner.user_id], "POST", f"/workspaces/{wid}/members", body)
    if created:
        for task in STARTER_TASKS:
            await _expect(gateway, tokens[owner.user_id], "POST", f"/workspaces/{wid}/tasks", task)
    return Demo(wid, tokens, created)
