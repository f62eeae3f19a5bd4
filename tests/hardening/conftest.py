"""Hardening harness: the WebSocket ``world`` of tests/integration, available to these suites too.

The world (real handlers over real Postgres/Redis, moto's Management API patched to capture posts)
is defined in tests/integration/conftest.py, whose fixtures pytest only offers below that folder.
Its module is reused here: the one pytest loaded when tests/integration is collected in the same
session (so both folders capture posts into one ``Sink``, whichever patch of moto came last), or
else a copy imported by path.

Every test here also has its logs scanned (``log_scan``, autouse): the JSON lines the Powertools
logger writes, every record of the logging module, and stdout/stderr; none may hold a JWT-looking
string, a token or ticket issued during the test, or a secret the test registered.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

INTEGRATION_CONFTEST = (Path(__file__).resolve().parents[1] / "integration" / "conftest.py").resolve()
_COPY = "collab_hardening_integration_harness"


def integration_harness(config: pytest.Config) -> ModuleType:
    """tests/integration/conftest.py as a module: pytest's own when loaded, else a copy."""
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == INTEGRATION_CONFTEST:
            return plugin  # type: ignore[no-any-return]
    module = sys.modules.get(_COPY)
    if module is None:
        spec = importlib.util.spec_from_file_location(_COPY, INTEGRATION_CONFTEST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_COPY] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> ModuleType:
    return integration_harness(request.config)


@pytest.fixture(scope="session")
def moto_endpoint(harness: ModuleType) -> Iterator[str]:
    """moto's Management API, patched as tests/integration patches it, into the harness's Sink."""
    with harness.moto_management_api(harness.SINK) as endpoint:
        yield endpoint


@pytest.fixture
def sink(harness: ModuleType, moto_endpoint: str) -> Any:
    harness.SINK.reset()
    return harness.SINK


@pytest.fixture
def world(harness: ModuleType, settings: Any, clean: None, clock: Any, sink: Any, moto_endpoint: str) -> Any:
    """Users, workspaces and connections over the real handlers (see tests/integration/conftest.py)."""
    from collab import runtime

    rt = runtime.Runtime(settings.model_copy(update={"connections_endpoint": moto_endpoint}), clock=clock)
    runtime.install(rt)
    w = harness.World(rt, sink)
    w.conn_class = harness.Conn  # for connections opened by hand (connect_raw)
    yield w
    runtime.install(None)
    if "db" in rt.__dict__:
        rt.db.close()


# -- secrets in logs ---------------------------------------------------------------------------------
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


class _Tap(io.TextIOBase):
    """A log handler's stream that keeps what is written, and writes it on to stdout (as Lambda's
    runtime does; captured by pytest, shown should the test fail)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.append(text)
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class LogScan:
    def __init__(self) -> None:
        self.lines: list[str] = []  # the Powertools logger's output, as written
        self.secrets: set[str] = set()

    def secret(self, value: str) -> str:
        """Register a value (a token, a ticket) that no log may hold, nor its payload or signature."""
        self.secrets.add(value)
        if JWT.fullmatch(value):
            self.secrets.update(value.split(".")[1:])
        return value

    def leaks(self, texts: list[str]) -> list[str]:
        everything = "\n".join(texts)
        found = [f"JWT-looking: {m.group(0)[:40]}..." for m in JWT.finditer(everything)]
        for value in self.secrets:
            at = everything.find(value)
            if at >= 0:
                found.append(f"secret {value[:12]}... in: {everything[max(0, at - 100) : at + 100]!r}")
        return found


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record carries: message, arguments, extra fields, exception text."""
    parts = [record.getMessage(), repr(record.__dict__)]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def fake(record: logging.LogRecord) -> bool:
    """Records of the stand-ins for AWS (moto's Management API logs the payloads it receives, which
    carry what users typed); API Gateway itself logs no payload."""
    return record.name.split(".")[0] in ("moto", "werkzeug")


@pytest.fixture(autouse=True)
def log_scan(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[LogScan]:
    from collab.auth import tokens
    from collab.observability import logger

    scan = LogScan()
    issue_ticket, issue_access_token = tokens.issue_ticket, tokens.issue_access_token

    def ticket(*args: Any, **kwargs: Any) -> Any:
        token, exp = issue_ticket(*args, **kwargs)
        return scan.secret(token), exp

    def access_token(*args: Any, **kwargs: Any) -> str:
        return scan.secret(issue_access_token(*args, **kwargs))

    monkeypatch.setattr(tokens, "issue_ticket", ticket)
    monkeypatch.setattr(tokens, "issue_access_token", access_token)
    handlers = [h for h in logger._logger.handlers if isinstance(h, logging.StreamHandler)]
    originals = [h.setStream(_Tap(scan.lines)) for h in handlers]
    try:
        yield scan
    finally:
        for h, original in zip(handlers, originals, strict=True):
            # the logger may have been made while a test's capture (since closed) was stdout
            h.setStream(
                sys.__stdout__ if original is None or getattr(original, "closed", False) else original
            )
    out = capsys.readouterr()
    sys.stdout.write(out.out)  # captured again: shown should the test fail
    sys.stderr.write(out.err)
    texts = [*scan.lines, out.out, out.err, *(record_text(r) for r in caplog.records if not fake(r))]
    leaks = scan.leaks(texts)
    assert not leaks, f"secrets in the logs: {leaks[:5]}"
