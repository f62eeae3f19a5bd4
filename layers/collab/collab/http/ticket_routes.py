"""``POST /ws-tickets``: a single-use WebSocket ticket for a workspace (contract 3.1)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from collab.domain import workspaces
from collab.http.routing import TaggedRouter, checked, me, route, rt
from collab.http.schemas import TicketOut, TicketRequest

router = TaggedRouter("realtime")


@route(router, "POST", "/ws-tickets", "create_ticket", "A single-use WebSocket ticket for a workspace",
       ok="The ticket and the URL to open", errors=(403, 404))  # fmt: skip
def create_ticket(body: Annotated[TicketRequest, Body()]) -> TicketOut:
    runtime = rt()
    return checked(workspaces.issue_ticket(runtime.db, runtime.settings, me(), str(body.workspace_id)))
