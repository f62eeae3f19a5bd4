"""API Gateway Management API adapter: post to and delete WebSocket connections.

One instance per endpoint per container. Requests are SigV4-signed by
:mod:`collab.adapters.apigw.sigv4` and sent by :class:`collab.adapters.apigw.http_pool.Broadcaster`,
which keeps every post of a fan-out in flight at once over keep-alive connections from a single
thread. :meth:`broadcast` never stops at the first failure and returns a :class:`Receipt`:
delivered, gone (HTTP 410, the peer is dead) and failed ids.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote, urlsplit

from collab import deadline
from collab.adapters.apigw import sigv4
from collab.adapters.apigw.http_pool import Broadcaster
from collab.observability import MetricUnit, logger, metrics
from collab.protocol.wire import MESSAGE_LIMIT

CONCURRENCY = 32  # posts in flight per fan-out: a 50-member workspace goes out in about two waves
# The hard cap of one fan-out (connects, handshakes, posts, retries), whatever time is left; the
# invocation's own end (collab.deadline) usually comes first. Half of a WebSocket route's 10 s.
TIMEOUT_S = 5.0
# Connections a new container opens during its init (FANOUT_WARM_CONNECTIONS): what a fan-out to 50
# keeps in flight (two waves of 25), so that its first fan-out is as fast as a warm one.
WARM_CONNECTIONS = 25

DELIVERED, GONE, FAILED = "delivered", "gone", "failed"
THROTTLED = "throttled"  # a failure (429 after the retries) the delivery tracer names apart


@dataclass(slots=True)
class Receipt:
    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)  # the failed ones that were still 429

    def counts(self) -> dict[str, int]:
        return {"delivered": len(self.delivered), "gone": len(self.gone), "failed": len(self.failed)}

    def add(self, cid: str, outcome: str) -> None:
        {DELIVERED: self.delivered, GONE: self.gone}.get(outcome, self.failed).append(cid)
        if outcome == THROTTLED:
            self.throttled.append(cid)


def _outcome(status: int) -> str:
    if 200 <= status < 300:
        return DELIVERED
    if status == 429:
        return THROTTLED
    return GONE if status == 410 else FAILED


@lru_cache(maxsize=4096)
def _cid_paths(cid: str) -> tuple[str, str]:
    """A connection id as it goes in the request path, and as SigV4 encodes that path once more
    ('@' -> %40, '%' -> %25). Cached: a warm container posts to the same connections again and again."""
    q = quote(cid, safe="")
    return q, q.replace("%", "%25")


def _region_of(host: str) -> str:
    # {api-id}.execute-api.{region}.amazonaws.com
    parts = host.split(".")
    if len(parts) >= 4 and parts[1] == "execute-api":
        return parts[2]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class ManagementApi:
    def __init__(
        self,
        endpoint: str,
        *,
        credentials: sigv4.Credentials | None = None,
        concurrency: int = CONCURRENCY,
        timeout: float = TIMEOUT_S,
    ) -> None:
        u = urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("endpoint must be an http(s) URL")
        self.endpoint = endpoint
        self._host_header = u.netloc
        self._base = u.path.rstrip("/")
        self._canonical_base = sigv4.canonical_path(self._base)
        self._region = _region_of(u.hostname)
        self._creds = credentials
        self._local = threading.local()  # one broadcaster (and its connections) per thread
        self._args = (u.hostname, u.port or (443 if u.scheme == "https" else 80), u.scheme == "https")
        self._concurrency, self._timeout = concurrency, timeout
        self.posts = 0

    def _credentials(self) -> sigv4.Credentials:
        creds = self._creds or sigv4.env_credentials()
        if creds is None:
            import botocore.session  # only outside Lambda, when credentials are not in the environment

            c = botocore.session.get_session().get_credentials()
            if c is None:
                raise RuntimeError("no AWS credentials for the Management API")
            f = c.get_frozen_credentials()
            creds = sigv4.Credentials(f.access_key, f.secret_key, f.token)
        return creds

    def stats(self) -> dict[str, int]:
        """This thread's connections: TCP connects, TLS handshakes, of which resumed."""
        b = self._broadcaster()
        return {"connects": b.connects, "handshakes": b.handshakes, "resumed": b.resumed}

    def _broadcaster(self) -> Broadcaster:
        b: Broadcaster | None = getattr(self._local, "b", None)
        if b is None:
            host, port, tls = self._args
            b = Broadcaster(host, port, tls=tls, concurrency=self._concurrency, timeout=self._timeout)
            self._local.b = b
        return b

    def _requests(
        self, method: str, items: list[tuple[str, bytes]], now: datetime | None = None
    ) -> list[bytes]:
        """Signed HTTP/1.1 requests, one per (connection id, body); one signing context for all."""
        ctx = sigv4.SigningContext(self._credentials(), self._region, self._host_header, now)
        hashes: dict[int, str] = {}
        head = f"Host: {self._host_header}\r\n"
        out = []
        for cid, body in items:
            h = hashes.get(id(body))
            if h is None:
                h = hashes[id(body)] = hashlib.sha256(body).hexdigest()
            cid_q, cid_c = _cid_paths(cid)
            path = f"{self._base}/@connections/{cid_q}"
            canonical = f"{self._canonical_base}/%40connections/{cid_c}"
            typ = "Content-Type: application/json\r\n" if body else ""
            out.append(
                f"{method} {path} HTTP/1.1\r\n{head}{ctx.header_lines(method, canonical, h)}{typ}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        return out

    def _send(self, method: str, items: list[tuple[str, bytes]]) -> list[str]:
        if not items:
            return []
        if any(len(body) > MESSAGE_LIMIT for _, body in items):
            # API Gateway answers 413 to a message over 128 KB: failed without a round trip. The
            # domain keeps every frame under it; this is the last line, and it is logged.
            logger.error(
                "message over API Gateway's 128 KB not posted", extra={"bytes": max(len(b) for _, b in items)}
            )
            sendable = [i for i, (_, body) in enumerate(items) if len(body) <= MESSAGE_LIMIT]
            outcomes = [FAILED] * len(items)
            for i, outcome in zip(sendable, self._send(method, [items[i] for i in sendable]), strict=True):
                outcomes[i] = outcome
            return outcomes
        reqs = self._requests(method, items)
        statuses = self._broadcaster().send(
            reqs,
            build=lambda i: self._requests(method, [items[i]])[0],
            deadline=deadline.deadline(self._timeout),
        )
        self.posts += len(items)
        outcomes = [_outcome(s) for s in statuses]
        failed = outcomes.count(FAILED)
        if failed:
            # Not delivered and not known gone (403, 5xx after retries, reset, out of time): the
            # PostsNotDelivered alarm watches this (infra/observability.py).
            metrics.add_metric(name="PostsNotDelivered", unit=MetricUnit.Count, value=failed)
            extra = {"method": method, "failed": failed, "of": len(items)}
            logger.warning("posts not delivered", extra=extra)
        return outcomes

    def warm(self, n: int = WARM_CONNECTIONS, *, budget_s: float = 1.0) -> int:
        """Open up to ``n`` TLS connections now (a container's init, :func:`collab.ws.message.prepare`),
        so that the first fan-out finds them ready: 25 is what a fan-out to 50 keeps in flight.
        Returns how many are ready; never raises (the fan-out opens its own if these failed)."""
        try:
            return self._broadcaster().warm(n, deadline=time.monotonic() + budget_s)
        except OSError as exc:
            logger.warning("could not open Management API connections ahead", extra={"reason": str(exc)})
            return 0

    # -- the port -------------------------------------------------------------------------------
    def post(self, cid: str, data: bytes) -> str:
        """Send one message; returns ``delivered``, ``gone``, ``throttled`` (429) or ``failed``."""
        return self._send("POST", [(cid, data)])[0]

    def broadcast(self, cids: Iterable[str], data: bytes) -> Receipt:
        """Post ``data`` to every connection concurrently; waits for all of them."""
        targets = list(cids)
        receipt = Receipt()
        for cid, outcome in zip(targets, self._send("POST", [(c, data) for c in targets]), strict=True):
            receipt.add(cid, outcome)
        return receipt

    def send_each(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """Post a different message to each connection concurrently; outcomes in the same order."""
        return self._send("POST", messages)

    def delete(self, cid: str) -> bool:
        """Close a connection at API Gateway; True when it was open (False: already gone)."""
        return self._send("DELETE", [(cid, b"")])[0] == DELIVERED

    def delete_many(self, cids: list[str]) -> list[str]:
        return self._send("DELETE", [(c, b"") for c in cids])
