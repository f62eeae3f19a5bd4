"""Schemathesis hooks for the HTTP API run (``SCHEMATHESIS_HOOKS``).

Every generated ``Idempotency-Key`` is made unique. Hypothesis draws simple values (``"0"``) again
and again, and the API answers a key reused with a different request with 422 as it must
(docs/http-api.md): that is a client error the fuzzer would provoke, not a disagreement between the
document and the server. Replays of one key are tested in tests/integration/test_exactly_once.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def map_headers(ctx: Any, headers: dict[str, str] | None) -> dict[str, str] | None:
    if headers:
        for name in list(headers):
            if name.lower() == "idempotency-key":
                headers[name] = uuid.uuid4().hex
    return headers
