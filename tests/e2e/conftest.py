"""End-to-end harness: local gateways started in-process on free ports, each on its own loop thread.

Every test (or module) gets its own gateway, so the suite runs under ``pytest -n 2``. The gateway
exports ``CONNECTIONS_ENDPOINT`` / ``WEBSOCKET_URL`` into the process environment for its handlers;
the fixtures put back what was there before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.harness import RunningGateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXPORTED = (
    "CONNECTIONS_ENDPOINT",
    "WEBSOCKET_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LAMBDA_ENDPOINT_URL",
    "FANOUT_FUNCTION",
)


def preserve_exported_env(mp: pytest.MonkeyPatch) -> None:
    for name in EXPORTED:
        if name in os.environ:
            mp.setenv(name, os.environ[name])
        else:
            mp.delenv(name, raising=False)


def real_functions_env(mp: pytest.MonkeyPatch, service_urls: dict[str, str], secret: str) -> None:
    """What the real functions read behind a module's own gateway: the suite's Postgres and Redis,
    the JWT secret, and quiet Powertools."""
    preserve_exported_env(mp)
    for name, value in service_urls.items():
        mp.setenv(name, value)
    mp.setenv("JWT_SECRET", secret)
    mp.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    mp.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture
def start_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway with the given LocalGateway arguments; stopped after the test."""
    preserve_exported_env(monkeypatch)
    started: list[RunningGateway] = []

    def start(**kwargs: Any) -> RunningGateway:
        gw = RunningGateway(**kwargs).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def _chromium() -> str:
    """Debian's Chromium. A test never installs it (`.ci/run` does, and a developer once); when it
    is missing the browser tests fail with one line saying so, never a silent skip."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()
