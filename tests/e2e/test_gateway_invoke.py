"""The local gateway's Lambda Invoke API (issue 15): what the fan-out function's callers meet in AWS.

``collab.adapters.awslambda.invoker.Invoker`` (the real client, signing as the calling function)
against the gateway: an asynchronous invocation is accepted (202) and runs the function with the
event; a caller whose role may not invoke it is refused 403 as Lambda refuses it; a payload over
Lambda's 1 MB for asynchronous invocations is refused 413; an unknown function is 404; an unsigned
request 403."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from collab.adapters.apigw import sigv4
from collab.adapters.awslambda.invoker import Invoker
from collab_dev.permissions import call_as, credentials_for
from tests.e2e import stub_handlers
from tests.e2e.harness import RunningGateway

pytestmark = pytest.mark.e2e


def wait_for(predicate: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def gw(start_gateway: Callable[..., RunningGateway]) -> tuple[RunningGateway, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def fanout(event: dict[str, Any], context: Any) -> dict[str, int]:
        with lock:
            seen.append(event)
        return {"delivered": len(event.get("connections", []))}

    fanout.name = "fanout"  # type: ignore[attr-defined]
    gateway = start_gateway(routes=stub_handlers.ROUTES, functions={"fanout": fanout}, sweep_interval_s=None)
    return gateway, seen


def _raw(
    gw: RunningGateway,
    body: bytes,
    *,
    as_function: str | None,
    kind: str = "Event",
    name: str = "collab-fanout",
) -> int:
    path = f"/2015-03-31/functions/{name}/invocations"
    headers = {"Content-Type": "application/json", "X-Amz-Invocation-Type": kind}
    if as_function is not None:
        host = gw.http_url.removeprefix("http://")
        creds = sigv4.Credentials(*credentials_for(as_function))
        headers = sigv4.sign_request("POST", host, path, headers, body, creds, "us-east-1", "lambda")
        headers.pop("Host")
    req = urllib.request.Request(gw.http_url + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_an_asynchronous_invocation_runs_the_function_with_the_event(gw: Any) -> None:
    gateway, seen = gw
    invoker = Invoker("collab-fanout", endpoint=gateway.http_url, region="us-east-1")
    events = [{"kind": "collab.fanout", "connections": [f"c{i}="], "n": i} for i in range(3)]
    assert call_as("message", invoker.invoke_async, events) == [True, True, True]
    wait_for(lambda: len(seen) == 3)
    assert sorted(e["n"] for e in seen) == [0, 1, 2]
    assert gateway.gateway.invocations == {"fanout": 3}


def test_a_function_whose_role_may_not_invoke_it_is_refused(gw: Any) -> None:
    gateway, seen = gw
    invoker = Invoker("collab-fanout", endpoint=gateway.http_url, region="us-east-1")
    assert call_as("connect", invoker.invoke_async, [{"kind": "collab.fanout"}]) == [False]
    assert any("lambda:InvokeFunction" in d and "collab-connect" in d for d in gateway.gateway.denied)
    time.sleep(0.2)
    assert seen == []


def test_lambdas_limits_and_errors(gw: Any) -> None:
    gateway, seen = gw
    small = json.dumps({"kind": "collab.fanout"}).encode()
    assert _raw(gateway, small, as_function=None) == 403  # unsigned
    assert _raw(gateway, small, as_function="message", name="collab-nothing") == 404
    over = json.dumps({"pad": "x" * (1024 * 1024)}).encode()
    assert _raw(gateway, over, as_function="message") == 413  # 1 MB for an asynchronous invocation
    assert _raw(gateway, over, as_function="message", kind="RequestResponse") == 200  # 6 MB otherwise
    assert _raw(gateway, b"{not json", as_function="message") == 400
    wait_for(lambda: len(seen) == 1)
    assert len(seen[0]["pad"]) == 1024 * 1024  # only the synchronous one ran
