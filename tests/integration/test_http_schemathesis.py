"""An outside fuzzer against the HTTP API: Schemathesis, reading only docs/openapi.json.

The real handler (``collab.http.api.handle``) serves on a loopback port through a small HTTP server
that turns each request into an API Gateway payload 2.0 event, over the real Postgres and Redis of
the suite. ``st run`` gets the committed document, the URL and a bearer token of a user who owns a
seeded workspace, and runs every check in every phase: examples, coverage, fuzzing, and the stateful
phase, driven by the document's links (create -> read/update/delete; schemathesis.toml turns link
inference off so that only the declared links drive it). It must find nothing: every request the
document allows is accepted, every one it forbids is refused, every answer is documented.

In ``make test`` the run is small (``SCHEMATHESIS_MAX_EXAMPLES``, 10 per operation) and, under
``HYPOTHESIS_PROFILE=ci``, has a fixed seed; ``make fuzz`` runs it longer with a random seed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CI_SEED = 17
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
TIMEOUT_S = int(os.environ.get("SCHEMATHESIS_TIMEOUT_S", "600"))


class _Gateway(BaseHTTPRequestHandler):
    """One request -> one payload 2.0 event -> ``handle`` -> the HTTP response."""

    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        from collab.http.api import handle
        from collab_dev.emulator import lambda_events

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw_path, _, raw_query = self.path.partition("?")
        event = lambda_events.http_api(
            method=self.command,
            path=raw_path,
            raw_query=raw_query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            domain_name=f"127.0.0.1:{self.server.server_address[1]}",
        )
        result = lambda_events.http_api_result(handle(event, None))
        self.send_response(result.status)
        for name, value in result.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method reaches the handler (TRACE, QUERY, ...), as in API Gateway
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fuzzer reports
        pass


@pytest.fixture
def served(rt: Any) -> Iterator[str]:
    """The HTTP API on a loopback port, under /api like the local gateway (its per-request log
    lines off: thousands of them would only bury the fuzzer's report)."""
    from collab.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        logger.setLevel(level)


def _seed(settings: Any) -> str:
    """A token of a user who owns a workspace (with a task in it)."""
    from collab.auth.tokens import issue_access_token
    from collab.http.api import handle
    from collab_dev.emulator import lambda_events

    token = issue_access_token(settings, "fuzz-owner", email="owner@fuzz.test", name="Fuzz Owner", ttl_s=3600)

    def call(method: str, path: str, body: bytes) -> dict[str, Any]:
        headers = [("authorization", f"Bearer {token}"), ("content-type", "application/json")]
        event = lambda_events.http_api(
            method=method, path=path, raw_query="", headers=headers, body=body,
            source_ip="127.0.0.1", domain_name="127.0.0.1",
        )  # fmt: skip
        return handle(event, None)

    import json

    made = call("POST", "/workspaces", b'{"name": "Fuzzed board"}')
    assert made["statusCode"] == 201, made
    wid = json.loads(made["body"])["id"]
    task = call("POST", f"/workspaces/{wid}/tasks", b'{"title": "A task to find"}')
    assert task["statusCode"] == 201, task
    return token


def _st() -> str:
    path = Path(sys.executable).parent / "st"
    found = str(path) if path.exists() else shutil.which("st")
    if not found:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


def st_command(url: str, token: str, *, max_examples: int, seed: int | None) -> list[str]:
    """The command line, as docs/http-api.md gives it."""
    cmd = [
        _st(), "--config-file", str(ROOT / "schemathesis.toml"),
        "run", str(ROOT / "docs" / "openapi.json"),
        "--url", url,
        "-H", f"Authorization: Bearer {token}",
        # every check (Schemathesis 4's default), as schemathesis.toml narrows them per operation:
        # a --checks option here would override those narrowings
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(max_examples),
        "--workers", "1",
        "--no-color",
    ]  # fmt: skip
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd


def test_schemathesis_finds_nothing(served: str, settings: Any) -> None:
    token = _seed(settings)
    seed = CI_SEED if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else None
    cmd = st_command(served, token, max_examples=MAX_EXAMPLES, seed=seed)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, check=False, env=env
    )
    out = done.stdout + done.stderr
    report = ROOT / ".schemathesis" / "last-run.txt"  # git-ignored: the whole report of the last run
    report.parent.mkdir(exist_ok=True)
    report.write_text(out, encoding="utf-8")
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-4000:]
    print(summary)  # shown by pytest -rA / on failure
    assert done.returncode == 0, out[-20000:]
    operations = sum(
        len(ops) for ops in json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"].values()
    )
    assert re.search(rf"Tested: {operations}\b", out), summary
    assert "Failures:" not in summary and re.search(r"\b(\d+) passed\b", summary), summary
