"""The HTTP API's OpenAPI document, generated from the routes and their pydantic models.

    python -m collab_dev.openapi_export > docs/openapi.json

The committed ``docs/openapi.json`` is compared with this by the unit tests. Powertools documents
its own validation-error shapes; every error here is ``ErrorResponse``, so those references are
rewritten and the unused schemas dropped. A 204 has no content.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from collab.http.api import app
from collab.http.responses import DESCRIPTIONS

API_VERSION = "1"  # the contract's version (docs/contract.md)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of every route (committed as docs/openapi.json)."""
    raw = app.get_openapi_json_schema(
        title="Collab HTTP API",
        version=API_VERSION,
        description="Request/response side of Collab (contract section 4). Every route takes a bearer "
        'access token; errors are `{"error": {"code", "message"}}`; lists are '
        '`{"items": [...], "next_cursor": ...}`. A known path asked with a method it does not declare '
        "answers 405 (`method_not_allowed`) with an `Allow` header listing its methods; an unknown "
        "path answers 404.",
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
        security=[{"bearerAuth": []}],
    )
    doc: dict[str, Any] = json.loads(raw)
    ours = "#/components/schemas/ErrorResponse"
    theirs = {"#/components/schemas/HTTPValidationError", "#/components/schemas/ResponseValidationError"}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("$ref") in theirs:
                return {"$ref": ours}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    doc = rewrite(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            op["responses"] = dict(sorted(op.get("responses", {}).items()))
            for status, resp in op["responses"].items():
                if status == "204":
                    resp.pop("content", None)
                elif status == "500":
                    resp["description"] = DESCRIPTIONS[500]
    return doc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: python -m collab_dev.openapi_export > docs/openapi.json", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
