"""Tasks: a workspace's tasks and personal tasks - list, create, read, change, delete.

A change is published after its commit (:func:`collab.http.routing.publish`), exactly as its
WebSocket twin (``task.*``) is; personal tasks have no workspace and publish nothing.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from collab.domain import history, tasks
from collab.http.routing import IdempotencyKey, TaggedRouter, checked, db, follow, me, publish, route, rt
from collab.http.schemas import Cursor, HistoryPage, Limit, TaskId, TaskPage, WorkspaceId
from collab.models import Task
from collab.protocol.client_frames import TaskChanges, TaskDraft

router = TaggedRouter("tasks")
TASK = "/tasks/<task_id>"
WS_TASKS = "/workspaces/<workspace_id>/tasks"
ONE_TASK = follow("task_id", ("get_task", "update_task", "delete_task", "get_task_history"))


@route(router, "GET", WS_TASKS, "list_workspace_tasks", "A workspace's tasks, in creation order (members)",
       ok="A page of tasks", errors=(403, 404))  # fmt: skip
def list_workspace_tasks(workspace_id: WorkspaceId, cursor: Cursor = None, limit: Limit = 100) -> TaskPage:
    return checked(tasks.list_workspace(rt().db, me(), str(workspace_id), cursor=cursor, limit=limit))


@route(router, "POST", WS_TASKS, "create_workspace_task", "Create a task in a workspace (members)",
       ok="The new task", status=201, errors=(403, 404, 409), links=ONE_TASK)  # fmt: skip
def create_workspace_task(
    workspace_id: WorkspaceId, body: Annotated[TaskDraft, Body()], idempotency_key: IdempotencyKey = None
) -> Task:
    m = tasks.create(db(201, idempotency_key), me(), body, workspace_id=str(workspace_id))
    publish(m.committed)
    return checked(m.task)


@route(router, "GET", "/tasks", "list_personal_tasks", "My personal tasks, in creation order",
       ok="A page of tasks")  # fmt: skip
def list_personal_tasks(cursor: Cursor = None, limit: Limit = 100) -> TaskPage:
    return checked(tasks.list_personal(rt().db, me(), cursor=cursor, limit=limit))


@route(router, "POST", "/tasks", "create_personal_task",
       "Create a personal task (seen and changed by its owner only)", ok="The new task", status=201,
       errors=(409,), links=ONE_TASK)  # fmt: skip
def create_personal_task(body: Annotated[TaskDraft, Body()], idempotency_key: IdempotencyKey = None) -> Task:
    return checked(tasks.create(db(201, idempotency_key), me(), body, workspace_id=None).task)


@route(router, "GET", TASK, "get_task", "A task (members of its workspace; a personal task: its owner)",
       ok="The task", errors=(403, 404))  # fmt: skip
def get_task(task_id: TaskId) -> Task:
    return checked(tasks.get(rt().db, me(), str(task_id)))


@route(router, "PATCH", TASK, "update_task", "Change some fields of a task; last write wins per field",
       ok="The committed task", errors=(403, 404, 409),
       description="With `base_version`, the change is refused (409, with the current task) when the "
       "task has moved on since that version. With `seen_version` (v1.3: the version the user was "
       "looking at), a description changed concurrently since is merged rather than replaced, and "
       "users whose changes of the last 60 s this one overwrote get `task.overwritten` (the conflict "
       "receipt itself is the WebSocket `ack`'s).")  # fmt: skip
def update_task(
    task_id: TaskId,
    body: Annotated[TaskChanges, Body()],
    base_version: Annotated[int | None, Query(ge=1)] = None,
    seen_version: Annotated[int | None, Query(ge=1)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Task:
    m = tasks.update(
        db(200, idempotency_key),
        me(),
        str(task_id),
        body.patch(),
        base_version=base_version,
        seen_version=seen_version,
    )
    publish(m.committed)
    return checked(m.task)


# 409: an Idempotency-Key reused for another request
@route(router, "DELETE", TASK, "delete_task", "Delete a task; answers its tombstone (deleted, final version)",
       ok="The tombstone", errors=(403, 404, 409))  # fmt: skip
def delete_task(task_id: TaskId, idempotency_key: IdempotencyKey = None) -> Task:
    m = tasks.delete(db(200, idempotency_key), me(), str(task_id))
    publish(m.committed)
    return checked(m.task)


@route(router, "GET", f"{TASK}/history", "get_task_history",
       "A task's changes, newest first, with field diffs (members; a personal task's is empty)",
       ok="A page of changes", errors=(403, 404),
       description="From the activity log (v1.3): each change's seq, actor, time, event type, kind "
       "(create, update, delete, undo, redo; null before v1.3), the seq an undo or redo refers to, "
       "and `changes`: `{field: {from, to}}` (`deleted` for deletions and restores).")  # fmt: skip
def get_task_history(task_id: TaskId, cursor: Cursor = None, limit: Limit = 50) -> HistoryPage:
    return checked(history.history(rt().db, me(), str(task_id), cursor=cursor, limit=limit))
