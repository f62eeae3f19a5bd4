"""What every HTTP route shares: the request it serves (runtime and caller), the way it is declared
(path, operation id, summary, documented answers in one call), and publishing after the commit.

A route calls one domain function and, when that function committed a change, publishes it, so an
HTTP mutation emits exactly the events, seqs, activity and notifications of its WebSocket twin.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from collab.auth.tokens import Identity
from collab.domain import events, workspaces
from collab.http.responses import READ, WRITE, documented
from collab.observability import logger
from collab.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Request:
    rt: Runtime
    identity: Identity


current: ContextVar[Request] = ContextVar("collab_http_request")


def rt() -> Runtime:
    return current.get().rt


def me() -> str:
    """The caller's user id."""
    return current.get().identity.user_id


class TaggedRouter(APIGatewayHttpRouter):
    """A router whose operations all carry one tag in the OpenAPI document."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag


def route(
    router: TaggedRouter,
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    ok: str,
    status: int = 200,
    errors: tuple[int, ...] = (),
    description: str | None = None,
    links: dict[str, dict[str, str]] | None = None,
) -> Callable[[F], F]:
    """Declare a route: ``errors`` are the answers it adds to what every route (or, with a body,
    every writing route) can answer. ``links`` (operation id -> {parameter: runtime expression})
    become OpenAPI links of the success response: what a client, or a stateful fuzzer, can do next
    with what was just created."""
    base = WRITE if method in ("POST", "PATCH", "PUT") else READ
    responses = documented(status, ok, base + errors)
    if links:
        responses[status]["links"] = {
            op: {"operationId": op, "parameters": params} for op, params in sorted(links.items())
        }
    return router.route(
        path,
        method,
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=[router.tag],
        status_code=status,
        responses=responses,
    )


def follow(param: str, ops: tuple[str, ...], value: str = "$response.body#/id") -> dict[str, dict[str, str]]:
    """Links to ``ops``, each taking ``param`` from the response (by default its ``id``)."""
    return {op: {param: value} for op in ops}


def checked(value: Any) -> Any:
    """A domain result, handed to the response validation middleware, which checks it against the
    route's return model (and serialises it) before it leaves: domain dicts need no second model."""
    return value


def publish(committed: events.Committed) -> None:
    """Publish after the commit. The mutation stands whatever happens here, so a failure is logged,
    never answered: peers notice the missing seq and ``sync`` replays it from the activity log."""
    runtime = rt()
    try:
        events.publish(runtime, committed, runtime.gateway_for(None))
    except Exception:  # noqa: BLE001 - the commit stands; the failure is logged, not answered
        logger.exception("publish after commit failed")


def settle(change: workspaces.Change) -> None:
    """The after-commit part of a membership change (events, closing connections), logged on failure."""
    runtime = rt()
    try:
        workspaces.settle(runtime, runtime.gateway_for(None), change)
    except Exception:  # noqa: BLE001 - the commit stands; the failure is logged, not answered
        logger.exception("settling a membership change failed")
