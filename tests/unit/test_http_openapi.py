"""The HTTP API without a database: the committed OpenAPI document, the one error mapping, and the
checks that run before any route (size, encoding, media type, bearer token)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from collab.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from collab.http import api, responses
from collab_dev import openapi_export

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "openapi.json"

# Contract section 4, route by route (the document names path parameters after what they hold).
CONTRACT_ROUTES = {
    ("post", "/ws-tickets"),
    ("get", "/workspaces"),
    ("post", "/workspaces"),
    ("get", "/workspaces/{workspace_id}"),
    ("patch", "/workspaces/{workspace_id}"),
    ("delete", "/workspaces/{workspace_id}"),
    ("get", "/workspaces/{workspace_id}/members"),
    ("post", "/workspaces/{workspace_id}/members"),
    ("patch", "/workspaces/{workspace_id}/members/{user_id}"),
    ("delete", "/workspaces/{workspace_id}/members/{user_id}"),
    ("get", "/workspaces/{workspace_id}/tasks"),
    ("post", "/workspaces/{workspace_id}/tasks"),
    ("get", "/tasks/{task_id}"),
    ("patch", "/tasks/{task_id}"),
    ("delete", "/tasks/{task_id}"),
    ("get", "/tasks"),
    ("post", "/tasks"),
    ("get", "/workspaces/{workspace_id}/activity"),
    ("get", "/workspaces/{workspace_id}/presence"),
    ("get", "/notifications"),
    ("post", "/notifications/read"),
    ("get", "/tasks/{task_id}/history"),  # v1.3
}
# Contract v1.2: what the operators of a workspace use (admins and owners only).
OPERATOR_ROUTES = {
    ("get", "/workspaces/{workspace_id}/webhooks"),
    ("post", "/workspaces/{workspace_id}/webhooks"),
    ("delete", "/workspaces/{workspace_id}/webhooks/{webhook_id}"),
    ("post", "/workspaces/{workspace_id}/webhooks/{webhook_id}/redeliveries"),
    ("get", "/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries"),
    ("get", "/workspaces/{workspace_id}/deliveries"),
    ("get", "/workspaces/{workspace_id}/connections"),
    ("get", "/workspaces/{workspace_id}/usage"),
}


# -- the document ------------------------------------------------------------------------------
def test_the_committed_openapi_document_is_the_one_the_code_generates():
    committed = json.loads(DOC_PATH.read_text())
    assert committed == openapi_export.openapi_document(), (
        "docs/openapi.json is stale: run `python -m collab_dev.openapi_export > docs/openapi.json`"
    )


def test_the_document_is_valid_openapi_and_covers_every_contract_route():
    from openapi_spec_validator import validate

    doc = openapi_export.openapi_document()
    validate(doc)
    routes = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == CONTRACT_ROUTES | OPERATOR_ROUTES
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_documents_its_errors_with_the_one_error_body():
    doc = openapi_export.openapi_document()
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            for status in ("401", "422", "500"):
                assert responses[status]["content"]["application/json"]["schema"] == error_ref, (method, path)
            for status, response in responses.items():
                if status >= "400":
                    assert response["content"]["application/json"]["schema"] == error_ref, (
                        method,
                        path,
                        status,
                    )
            if "requestBody" in op:
                assert {"400", "413", "415"} <= set(responses), (method, path)
    assert not {"HTTPValidationError", "ResponseValidationError"} & set(doc["components"]["schemas"])


def test_the_generator_prints_the_document(capsys):
    assert openapi_export.main([]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(DOC_PATH.read_text())
    assert openapi_export.main(["--bogus"]) == 2


# -- the one error mapping ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationError("title: too long", field="title"), 422, "validation_error"),
        (PayloadTooLarge(), 413, "payload_too_large"),
        (Unauthorized(), 401, "unauthorized"),
        (Forbidden(), 403, "forbidden"),
        (NotFound(), 404, "not_found"),
        (Conflict("already a member"), 409, "conflict"),
        (RateLimited(retry_after_ms=1500), 429, "rate_limited"),
        (Unavailable(), 503, "internal"),
        (ConfigError("WEBSOCKET_URL: is required"), 500, "internal"),
        (responses.BadRequest(), 400, "validation_error"),
        (responses.UnsupportedMediaType(), 415, "validation_error"),
        (RuntimeError("secret detail: postgres://user:pw@host"), 500, "internal"),
    ],
)
def test_error_response_maps_every_error(error, status, code):
    response = responses.error_response(error)
    assert response.status_code == status
    assert response.body["error"]["code"] == code
    assert "secret detail" not in json.dumps(response.body)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status == 429:
        assert response.headers["Retry-After"] == "2"


def test_the_resolvers_own_errors_use_the_same_body():
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError
    from aws_lambda_powertools.event_handler.openapi.exceptions import (
        RequestUnsupportedContentType,
        RequestValidationError,
        ResponseValidationError,
    )

    bad_json = RequestValidationError(
        [{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error"}]
    )
    missing = RequestValidationError([{"type": "missing", "loc": ("body", "name"), "msg": "Field required"}])
    cases = [
        (bad_json, 400, None),
        (missing, 422, "body.name"),
        (RequestUnsupportedContentType("no", errors=[]), 415, None),
        (NotFoundError(), 404, None),
        (ResponseValidationError(errors=[{"type": "x", "loc": ("response",), "msg": "bad"}]), 500, None),
    ]
    for exc, status, field in cases:
        response = responses.error_response(exc)
        assert response.status_code == status, exc
        assert set(response.body) == {"error"} and {"code", "message"} <= set(response.body["error"])
        assert response.body["error"].get("field") == field


# -- before any route: no database needed -------------------------------------------------------
@pytest.fixture
def offline() -> Any:
    """A runtime whose database and Redis must never be touched: every request here is refused first."""
    from collab import runtime
    from collab.config import load_settings

    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "JWT_SECRET": "s" * 40,
        }
    )
    rt = runtime.Runtime(settings, db=object(), store=object())  # type: ignore[arg-type]
    runtime.install(rt)
    yield settings
    runtime.install(None)


def _event(
    method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.test", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
        **({"body": body} if body is not None else {}),
    }


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, None, 401),
        ({"Authorization": "Token abc"}, None, 401),
        ({"authorization": "Bearer nonsense"}, None, 401),
        ({}, "x" * (64 * 1024 + 1), 413),
        ({"content-type": "text/csv"}, "a,b", 415),
        ({"content-type": "application/json; charset=utf-8"}, '{"name": "ok"}', 401),
    ],
)
def test_requests_are_refused_before_any_route(offline, headers, body, status):
    out = api.handle(_event("POST", "/workspaces", headers, body), None)
    assert out["statusCode"] == status
    assert set(json.loads(out["body"])) == {"error"}


def test_every_route_requires_a_token(offline):
    for path, ops in openapi_export.openapi_document()["paths"].items():
        concrete = path.replace("{workspace_id}", str(uuid.uuid4())).replace("{task_id}", str(uuid.uuid4()))
        for method in ops:
            out = api.handle(_event(method.upper(), concrete.replace("{user_id}", "bob")), None)
            assert out["statusCode"] == 401, (method, path)
            assert json.loads(out["body"])["error"]["code"] == "unauthorized"
