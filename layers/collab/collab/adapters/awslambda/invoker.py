"""Lambda ``Invoke`` with ``InvocationType=Event`` (asynchronous), without boto3.

Why not boto3: importing it costs ~300 ms of a cold start, and the fan-out path must not pay that.
An asynchronous invoke is one SigV4-signed POST (``/2015-03-31/functions/{name}/invocations`` with
``X-Amz-Invocation-Type: Event``, answered 202 once Lambda has queued the event), which
:mod:`collab.adapters.apigw.sigv4` signs and :class:`collab.adapters.apigw.http_pool.Broadcaster`
sends, all of a fan-out's invocations at once over keep-alive connections, retrying 429 and 5xx.

The endpoint is ``https://lambda.{region}.amazonaws.com``, or ``LAMBDA_ENDPOINT_URL`` (the local
gateway under ``collab dev``). Credentials are the function role's, from the environment.

Payload limit: Lambda accepts up to 1 MB for an asynchronous invocation (256 KB before 2025, and
still in older documentation); callers keep each payload within :data:`PAYLOAD_LIMIT`, 256 KB, which
holds under either (a fan-out chunk is one frame of at most 128 KB plus 100 connection ids).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from collab import deadline
from collab.adapters.apigw import sigv4
from collab.adapters.apigw.http_pool import Broadcaster

PAYLOAD_LIMIT = 256 * 1024
ACCEPTED = 202  # the event is queued; Lambda runs it (and retries it twice on an error)
TIMEOUT_S = 2.0  # the Invoke API answers in a few ms; past this the caller posts the chunk itself
CONCURRENCY = 16


class PayloadTooLarge(ValueError):
    pass


class Invoker:
    """Asynchronous invocations of one function."""

    def __init__(self, function: str, *, endpoint: str | None = None, region: str | None = None) -> None:
        self.function = function
        env = os.environ
        self.region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        u = urlsplit(endpoint or f"https://lambda.{self.region}.amazonaws.com")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("the Lambda endpoint must be an http(s) URL")
        self._host_header = u.netloc
        self._args = (u.hostname, u.port or (443 if u.scheme == "https" else 80), u.scheme == "https")
        self.path = f"{u.path.rstrip('/')}/2015-03-31/functions/{quote(function, safe='')}/invocations"
        self._local = threading.local()
        self.invocations = 0

    def _broadcaster(self) -> Broadcaster:
        b: Broadcaster | None = getattr(self._local, "b", None)
        if b is None:
            host, port, tls = self._args
            b = self._local.b = Broadcaster(host, port, tls=tls, concurrency=CONCURRENCY, timeout=TIMEOUT_S)
        return b

    def _request(self, body: bytes) -> bytes:
        creds = sigv4.env_credentials()
        if creds is None:
            raise RuntimeError("no AWS credentials for the Lambda Invoke API")
        headers = sigv4.sign_request(
            "POST",
            self._host_header,
            self.path,
            {"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
            body,
            creds,
            self.region,
            "lambda",
        )
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"POST {self.path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def invoke_async(self, events: list[dict[str, Any]]) -> list[bool]:
        """Queue one invocation per event, all at once; True for each Lambda accepted (202). An
        event over :data:`PAYLOAD_LIMIT` raises before anything is sent."""
        bodies = [json.dumps(e, separators=(",", ":")).encode() for e in events]
        if any(len(b) > PAYLOAD_LIMIT for b in bodies):
            raise PayloadTooLarge(f"an asynchronous invocation carries at most {PAYLOAD_LIMIT} bytes")
        if not bodies:
            return []
        statuses = self._broadcaster().send(
            [self._request(b) for b in bodies],
            build=lambda i: self._request(bodies[i]),
            deadline=deadline.deadline(TIMEOUT_S),
        )
        self.invocations += len(bodies)
        return [s == ACCEPTED for s in statuses]
