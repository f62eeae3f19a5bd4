"""A local gateway serving from a background thread's event loop, for synchronous tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from collab_dev.emulator.local_gateway import LocalGateway


class RunningGateway:
    """A :class:`LocalGateway` serving from a background thread's event loop."""

    def __init__(self, **kwargs: Any) -> None:
        self.gateway = LocalGateway(**kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self._stopped = False

    def start(self) -> RunningGateway:
        self._thread.start()
        self.run(self.gateway.start())
        return self

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.run(self.gateway.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    @property
    def http_url(self) -> str:
        return self.gateway.http_url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    def connection_ids(self, *, user_agent: str | None = None) -> list[str]:
        views = self.run(_snapshot(self.gateway))
        return [
            v.connection_id for v in views if v.open and (user_agent is None or v.user_agent == user_agent)
        ]


async def _snapshot(gateway: LocalGateway) -> Any:
    return gateway.connections()
