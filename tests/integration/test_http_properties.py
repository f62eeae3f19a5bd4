"""Property-based tests of the OpenAPI document against the handler, in-process.

Requests are generated from docs/openapi.json itself (hypothesis strategies built from its JSON
Schemas): mostly valid bodies, paths and queries, with junk mixed in (wrong types, invalid JSON,
unknown ids, missing or bad tokens). For every request: no 5xx, the status is one the operation
documents, and the body matches the documented schema for that status (the error body included).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_http_helpers import ROOT, Api, http_event, installed_runtime, invoke

DOC = json.loads((ROOT / "docs" / "openapi.json").read_text())
OPERATIONS = [(path, method, op) for path, ops in DOC["paths"].items() for method, op in ops.items()]
# 30 per operation keeps the suite fast; HTTP_PROPERTY_EXAMPLES=500 searches deeper.
EXAMPLES = int(os.environ.get("HTTP_PROPERTY_EXAMPLES", "30"))
USERS = ("alice", "bob", "dave")  # owner, member, outsider of the seeded workspace

UTF8 = st.characters(codec="utf-8")  # anything a URL or a JSON body can carry, NUL and controls included
json_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(UTF8, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(UTF8, max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(
    schema: dict[str, Any], known: dict[str, list[str]] | None = None, name: str = ""
) -> st.SearchStrategy[Any]:
    """Values valid for a JSON Schema of the subset our request schemas use. ``known`` maps a field
    or parameter name to ids that exist, preferred for uuids of that name."""
    schema = _resolve(schema)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, known, name) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "uuid":
            ids = (known or {}).get(name) or []
            # mostly ids that exist, so requests get past the 404s into the routes' own rules
            return (
                st.one_of(st.sampled_from(ids), st.sampled_from(ids), st.uuids().map(str))
                if ids
                else st.uuids().map(str)
            )
        if fmt == "date":
            return st.dates().map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: schema.get("minLength", 0) <= len(s) <= schema.get("maxLength", 10**6)
            )
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 64)
        text = st.text(UTF8, min_size=lo, max_size=min(hi, 40))
        edges = [st.just("x" * hi)] if hi <= 10_000 else []
        users = [st.sampled_from(USERS)] if lo <= 5 <= hi else []
        return st.one_of(text, *edges, *users)
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        return st.integers(None if lo is None else int(lo), None if hi is None else int(hi))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), known, name),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, known, k) for k, v in props.items() if k in required},
            optional={k: from_schema(v, known, k) for k, v in props.items() if k not in required},
        )
    return json_junk


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@pytest.fixture
def seeded(settings: Any) -> Any:
    with installed_runtime(settings) as rt:
        yield _seeding(rt, settings)


def _seeding(rt: Any, settings: Any) -> Any:
    def tx(cur: Any) -> None:
        for uid in USERS:
            cur.execute(
                "INSERT INTO users (id, email) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (uid, f"{uid}@example.test"),
            )

    rt.db.run(tx)
    api = Api(settings)
    tokens = {u: api.token(u) for u in USERS}

    def seed() -> dict[str, list[str]]:
        """A fresh workspace (alice owner, bob member), a task in it and a personal task of alice's."""

        def tx(cur: Any) -> dict[str, list[str]]:
            wid = str(uuid.uuid4())
            cur.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'W', 'alice')", (wid,))
            cur.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, 'alice', 'owner'),"
                " (%s, 'bob', 'member')",
                (wid, wid),
            )
            tids = [
                str(
                    cur.execute(
                        "INSERT INTO tasks (workspace_id, title, created_by, updated_by)"
                        " VALUES (%s, 'T', 'alice', 'alice') RETURNING id",
                        (w,),
                    ).fetchone()["id"]
                )
                for w in (wid, None)
            ]
            notes = cur.execute(
                "INSERT INTO notifications (user_id, type, workspace_id, actor_id) VALUES ('bob', 'member.added', %s,"
                " 'alice') RETURNING id",
                (wid,),
            ).fetchone()
            return {"workspace_id": [wid], "task_id": tids, "id": tids, "ids": [str(notes["id"])]}

        return rt.db.run(tx)

    return seed, tokens


def _check(op: dict[str, Any], answer: Any) -> None:
    assert answer.status < 500, answer.body
    documented = op["responses"]
    assert str(answer.status) in documented, (answer.status, answer.body)
    content = documented[str(answer.status)].get("content")
    if answer.status == 204:
        assert answer.body is None and content is None
        return
    schema = content["application/json"]["schema"]
    jsonschema.validate(
        answer.body,
        {**schema, "components": DOC["components"]},
        cls=jsonschema.Draft202012Validator,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[o["operationId"] for _, _, o in OPERATIONS]
)
def test_every_response_is_documented_and_never_5xx(seeded, path, method, op):
    seed, tokens = seeded
    body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        known = seed()
        rendered = path
        for param in op.get("parameters", []):
            if param["in"] != "path":
                continue
            valid = from_schema(param["schema"], known, param["name"])
            value = data.draw(st.one_of(valid, valid, valid, st.text(UTF8, min_size=1, max_size=12)))
            rendered = rendered.replace("{" + param["name"] + "}", quote(str(value), safe=""))
        query = {}
        for param in op.get("parameters", []):
            if param["in"] == "query" and data.draw(st.booleans()):
                value = data.draw(
                    from_schema(param["schema"], known, param["name"]) | st.text(UTF8, max_size=10)
                )
                query[param["name"]] = _query_text(value)
        user = data.draw(st.sampled_from(["alice", "alice", "alice", "bob", "bob", "dave", None, "garbage"]))
        token = {None: None, "garbage": "not.a.token"}.get(user, tokens.get(user or ""))
        kwargs: dict[str, Any] = {}
        if body_schema is not None:
            choice = data.draw(st.sampled_from(["valid"] * 6 + ["junk", "text", "none"]))
            if choice == "valid":
                kwargs["body"] = data.draw(from_schema(body_schema, known))
            elif choice == "junk":
                kwargs["body"] = data.draw(json_junk)
            elif choice == "text":
                kwargs["raw_body"] = data.draw(st.text(UTF8, max_size=30))
        event = http_event(method.upper(), rendered, token=token, query=query or None, **kwargs)
        _check(op, invoke(event))

    run()
