"""The caller's notifications: list (newest first, optionally unread only) and mark read."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from collab.domain import notifications
from collab.http.routing import TaggedRouter, checked, me, route, rt
from collab.http.schemas import Limit, NotificationCursor, NotificationPage, ReadIn, ReadOut

router = TaggedRouter("notifications")


@route(router, "GET", "/notifications", "list_notifications", "My notifications, newest first",
       ok="A page of notifications")  # fmt: skip
def list_notifications(
    unread: bool = False, cursor: NotificationCursor = None, limit: Limit = 50
) -> NotificationPage:
    page = notifications.list_for(
        rt().db, me(), unread_only=unread, cursor=str(cursor) if cursor else None, limit=limit
    )
    return checked(page)


@route(router, "POST", "/notifications/read", "read_notifications", "Mark some of my notifications read",
       ok="The ids now read")  # fmt: skip
def read_notifications(body: Annotated[ReadIn, Body()]) -> ReadOut:
    return checked({"read": notifications.mark_read(rt().db, me(), [str(i) for i in body.ids])})
