"""The container: settings, clock and adapters, built once per Lambda container and reused.

Adapters are created on first use, so a route pays only for the clients it touches (heartbeat never
imports psycopg; connect never builds the Management API client). Tests and the local gateway may
install their own :class:`Runtime` with :func:`install`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from collab.clock import Clock
from collab.config import Settings, get_settings

if TYPE_CHECKING:
    from collab.adapters.apigw.management import ManagementApi
    from collab.adapters.awslambda.invoker import Invoker
    from collab.adapters.postgres.database import Database
    from collab.adapters.redis.store import Store
    from collab.adapters.sqs.queue import WebhookQueue


class Runtime:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        store: Store | None = None,
        gateway: ManagementApi | None = None,
        queue: WebhookQueue | None = None,
        invoker: Invoker | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.clock = clock or Clock()
        self._lock = threading.Lock()
        self._given: dict[str, Any] = {"db": db, "store": store, "gateway": gateway, "queue": queue}
        self._given["invoker"] = invoker
        # connection id -> ConnInfo; a connection's identity never changes, so warm containers
        # skip the Redis lookup. Bounded: cleared when it grows past 10,000 entries.
        self.connections: dict[str, Any] = {}

    @cached_property
    def db(self) -> Database:
        if self._given["db"] is not None:
            return self._given["db"]
        from collab.adapters.postgres.database import Database

        settings = self.settings
        return Database(lambda: settings.dsn)  # asked at each connect: rotations (5-minute cache)

    @cached_property
    def store(self) -> Store:
        if self._given["store"] is not None:
            return self._given["store"]
        from collab.adapters.redis.store import Store, connect_redis

        s = self.settings
        return Store(
            connect_redis(s.redis_url, cluster=s.redis_cluster, password=s.redis_password),
            cluster=s.redis_cluster,
        )

    @cached_property
    def queue(self) -> WebhookQueue | None:
        """The webhook delivery queue, when ``WEBHOOK_QUEUE_URL`` is set."""
        if self._given["queue"] is not None:
            return self._given["queue"]
        if not self.settings.webhook_queue_url:
            return None
        from collab.adapters.sqs.queue import WebhookQueue

        return WebhookQueue(self.settings.webhook_queue_url, endpoint_url=self.settings.sqs_endpoint_url)

    @cached_property
    def invoker(self) -> Invoker | None:
        """Asynchronous invocations of the fan-out function, when ``FANOUT_FUNCTION`` is set."""
        if self._given["invoker"] is not None:
            return self._given["invoker"]
        if not self.settings.fanout_function:
            return None
        from collab.adapters.awslambda.invoker import Invoker

        return Invoker(self.settings.fanout_function, endpoint=self.settings.lambda_endpoint_url)

    def gateway_for(self, endpoint_from_event: str | None) -> ManagementApi:
        """The Management API client: ``CONNECTIONS_ENDPOINT`` or the event's domain/stage."""
        if self._given["gateway"] is not None:
            return self._given["gateway"]
        endpoint = self.settings.connections_endpoint or endpoint_from_event
        with self._lock:
            gateways: dict[str, ManagementApi] = self.__dict__.setdefault("_gateways", {})
            gw = gateways.get(endpoint or "")
            if gw is None:
                from collab.adapters.apigw.management import ManagementApi

                if not endpoint:
                    from collab.errors import ConfigError

                    raise ConfigError("CONNECTIONS_ENDPOINT: is required outside API Gateway events")
                gw = ManagementApi(endpoint)
                gateways[endpoint] = gw
            return gw

    def remember(self, info: Any) -> None:
        if len(self.connections) > 10_000:
            self.connections.clear()
        self.connections[info.connection_id] = info


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


def install(rt: Runtime | None) -> None:
    """Replace (or with None, forget) the container's runtime."""
    global _runtime
    _runtime = rt
