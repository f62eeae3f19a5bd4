"""API Gateway Management API adapter: post to and delete WebSocket connections.

One instance per endpoint per container, holding a pool of keep-alive HTTP connections and a thread
pool of the same size, so a fan-out's posts overlap their network waits (the CPU part is serial
under the GIL: ~150 us per post here). :meth:`broadcast` never stops at the first failure and
returns a :class:`Receipt`: delivered, gone (HTTP 410, the peer is dead) and failed ids. Throttling
(429) and 5xx answers are retried a bounded number of times with jittered backoff.
"""

from __future__ import annotations

import http.client
import os
import queue
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from collab import sigv4

POOL_SIZE = 32  # concurrent posts per container: enough for a 50-member workspace in two waves
RETRIES = 3  # throttled/5xx posts are retried this many times (backoff 25, 50, 100 ms + jitter)
TIMEOUT_S = 5.0

DELIVERED, GONE, FAILED = "delivered", "gone", "failed"


@dataclass(slots=True)
class Receipt:
    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"delivered": len(self.delivered), "gone": len(self.gone), "failed": len(self.failed)}

    def add(self, cid: str, outcome: str) -> None:
        {DELIVERED: self.delivered, GONE: self.gone}.get(outcome, self.failed).append(cid)


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
        pool_size: int = POOL_SIZE,
        timeout: float = TIMEOUT_S,
    ) -> None:
        u = urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("endpoint must be an http(s) URL")
        self.endpoint = endpoint
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port
        self._host_header = u.netloc
        self._base = u.path.rstrip("/")
        self._region = _region_of(u.hostname)
        self._creds = credentials
        self._timeout = timeout
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._pool_size = pool_size
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.posts = 0

    # -- plumbing ------------------------------------------------------------------------------
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

    def _new_conn(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _request(self, method: str, cid: str, body: bytes = b"") -> int:
        path = f"{self._base}/@connections/{quote(cid, safe='')}"
        headers = sigv4.sign(method, self._host_header, path, body, self._credentials(), self._region)
        if body:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a keep-alive connection the server closed is retried once, fresh
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._new_conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                conn.close()
            else:
                self._idle.put(conn)
            return resp.status
        raise AssertionError("unreachable")

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self._pool_size, thread_name_prefix="fanout")
        return self._executor

    # -- the port -------------------------------------------------------------------------------
    def post(self, cid: str, data: bytes) -> str:
        """Send one message; returns ``delivered``, ``gone`` or ``failed``."""
        delay = 0.025
        for attempt in range(RETRIES + 1):
            try:
                status = self._request("POST", cid, data)
            except (http.client.HTTPException, OSError):
                status = 599
            self.posts += 1
            if status < 300:
                return DELIVERED
            if status == 410:
                return GONE
            if status in (429, 500, 502, 503, 504, 599) and attempt < RETRIES:
                time.sleep(delay + random.uniform(0, delay))
                delay *= 2
                continue
            return FAILED
        return FAILED

    def broadcast(self, cids: Iterable[str], data: bytes) -> Receipt:
        """Post ``data`` to every connection concurrently; waits for all of them."""
        targets = list(cids)
        receipt = Receipt()
        if not targets:
            return receipt
        if len(targets) == 1:
            receipt.add(targets[0], self.post(targets[0], data))
            return receipt
        outcomes = self._pool().map(lambda c: self.post(c, data), targets)
        for cid, outcome in zip(targets, outcomes, strict=True):
            receipt.add(cid, outcome)
        return receipt

    def send_each(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """Post a different message to each connection concurrently; outcomes in the same order."""
        if len(messages) == 1:
            return [self.post(*messages[0])]
        return list(self._pool().map(lambda m: self.post(m[0], m[1]), messages))

    def delete(self, cid: str) -> bool:
        """Close a connection at API Gateway; True when it was open (False: already gone)."""
        try:
            status = self._request("DELETE", cid)
        except (http.client.HTTPException, OSError):
            return False
        return status < 300
