"""Members of a workspace: list, add (by user id or email), change a role, remove or leave."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from collab.domain import members
from collab.http.routing import IdempotencyKey, TaggedRouter, checked, db, me, route, rt, settle
from collab.http.schemas import MemberByEmail, MemberById, MemberId, MemberIn, MemberPage, RoleIn, WorkspaceId
from collab.models import Member

router = TaggedRouter("members")
MEMBERS = "/workspaces/<workspace_id>/members"


@route(router, "GET", MEMBERS, "list_members", "The members of a workspace (members)",
       ok="Every member (one page: at most members_per_workspace)", errors=(403, 404))  # fmt: skip
def list_members(workspace_id: WorkspaceId) -> MemberPage:
    return checked(members.list_members(rt().db, me(), str(workspace_id)))


@route(router, "POST", MEMBERS, "add_member", "Add a user who has signed in before, by id or email (admin+)",
       ok="The new member", status=201, errors=(403, 404, 409),
       links={op: {"workspace_id": "$request.path.workspace_id", "user_id": "$response.body#/user_id"}
              for op in ("update_member", "remove_member")})  # fmt: skip
def add_member(
    workspace_id: WorkspaceId, body: Annotated[MemberIn, Body()], idempotency_key: IdempotencyKey = None
) -> Member:
    change = members.add_member(
        db(201, idempotency_key),
        me(),
        str(workspace_id),
        user_id=body.user_id if isinstance(body, MemberById) else None,
        email=body.email if isinstance(body, MemberByEmail) else None,
        role=body.role,
        cap=rt().settings.limits.members_per_workspace,
    )
    settle(change)
    return checked(change.result)


@route(router, "PATCH", f"{MEMBERS}/<user_id>", "update_member",
       "Change a member's role (admin+; only an owner touches admins and owners)",
       ok="The member", errors=(403, 404, 409))  # fmt: skip
def update_member(workspace_id: WorkspaceId, user_id: MemberId, body: Annotated[RoleIn, Body()]) -> Member:
    change = members.change_role(rt().db, me(), str(workspace_id), user_id, body.role)
    settle(change)
    return checked(change.result)


@route(router, "DELETE", f"{MEMBERS}/<user_id>", "remove_member",
       "Remove a member (admin+), or leave (yourself); their connections are closed",
       ok="Removed", status=204, errors=(403, 404, 409))  # fmt: skip
def remove_member(workspace_id: WorkspaceId, user_id: MemberId):  # a 204: no return model
    settle(members.remove_member(rt().db, me(), str(workspace_id), user_id))
    return Response(204)
