"""What every HTTP route shares: the request it serves (runtime and caller), the way it is declared
(path, operation id, summary, documented answers in one call), and publishing after the commit.

A route calls one domain function and, when that function committed a change, publishes it, so an
HTTP mutation emits exactly the events, seqs, activity and notifications of its WebSocket twin.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from collab.adapters.postgres.database import Database
from collab.auth.tokens import Identity
from collab.domain import events, ledger, workspaces
from collab.http.responses import READ, WRITE, documented
from collab.observability import logger
from collab.protocol.wire import dumps
from collab.runtime import Runtime

WRITES = ("POST", "PATCH", "PUT", "DELETE")  # the methods the per-user write budget counts

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Request:
    rt: Runtime
    identity: Identity
    # The ledger entry of a mutating request sent with an ``Idempotency-Key`` (set by :func:`db`).
    entry: ledger.Entry | None = None


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
    if method in WRITES:
        errors += (429,)  # the per-user write budget
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


# Idempotency-Key (as Stripe and draft-ietf-httpapi-idempotency-key-header use it): a client-chosen
# key of at most 255 characters. A retry with the same key gets the first answer (status and body,
# with ``Idempotent-Replayed: true``) and changes nothing; the same key with another request is 409.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes the request idempotent: a retry with the same key gets the first answer "
        "(with the header `Idempotent-Replayed: true`) and changes nothing, even after a failure whose "
        "outcome the client could not see. Keys are kept at least 24 hours; the same key with a "
        "different request is refused (409).",
    ),
]


def _body_of(result: Any) -> Any:
    if isinstance(result, workspaces.Change):
        return result.result
    task = getattr(result, "task", None)
    return task if task is not None and hasattr(result, "committed") else result


def db(status: int, idempotency_key: str | None) -> Database:
    """The database for a mutating route: with an ``Idempotency-Key``, one whose transaction writes
    the request's answer (``status`` and the JSON of what the route answers) to the request ledger
    (:mod:`collab.domain.ledger`), so the answer exists exactly when the change does."""
    request = current.get()
    if not idempotency_key:
        return request.rt.db
    event = app_event()
    http = (event.get("requestContext") or {}).get("http") or {}
    method, path = str(http.get("method", "")), str(http.get("path", ""))
    entry = ledger.Entry(
        request.identity.user_id,
        f"http:{idempotency_key}",
        ledger.fingerprint(
            method, path, str(event.get("rawQueryString") or ""), str(event.get("body") or "")
        ),
    )
    request.entry = entry

    def answer_of(result: Any) -> ledger.Answer:
        body = _body_of(result)
        return ledger.Answer(status, "" if status == 204 or body is None else dumps(body))

    return ledger.Ledgered(request.rt.db, entry, answer_of)  # type: ignore[return-value]


def app_event() -> dict[str, Any]:
    """The raw event of the request being served."""
    from collab.http.api import app

    return dict(app.current_event.raw_event)


def replay(answer: ledger.Answer) -> Response[Any]:
    """The first answer of a request, served again."""
    headers = {"Cache-Control": "no-store", "Idempotent-Replayed": "true"}
    if answer.status >= 400 or answer.status == 204 or not answer.body:
        body = answer.body or None
    else:
        body = answer.body
    return Response(answer.status, "application/json" if body else None, body, headers)


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
