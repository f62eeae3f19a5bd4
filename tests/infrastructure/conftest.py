"""Synthesize the CDK app once per test run and share the result.

Three synths per run (each ~4-10 s): the default configuration without cdk-nag for the assertion
tests, the default configuration with cdk-nag, and a variant with the non-default context options
(external IdP, single-AZ, no deletion protection, no reserved concurrency) with cdk-nag, so both the
assertions and the acknowledgments (cdk-nag's and Checkov's) are checked on each branch of the
stack code. Layers come from the cache in
``.build/layers``; the first run on a machine downloads the wheels once.

Under pytest-xdist every worker has its own session, so the synth output lives in the run's shared
base temp folder: the first worker to take the ``fcntl`` lock synthesizes, the others wait and read
the same template. Each worker still builds the construct tree (cheap, no synth), because tests ask
the stack for logical ids.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.layers import exclusive

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

VARIANT_CONTEXT = {
    "deletionProtection": "false",
    "dbMultiAz": "false",
    "redisReplicas": "0",
    "natGateways": "2",
    "jwtJwksUrl": "https://idp.example.com/.well-known/jwks.json",
    "jwtIssuer": "https://idp.example.com/",
    "jwtAudience": "collab-web",
    "manageApiGatewayAccount": "false",
    "alarmEmail": "ops@example.com",
    "stageName": "live",
    "reservedConcurrency": "false",
}


@dataclass
class Synth:
    stack: Any  # infra.stack.CollabStack
    template: dict[str, Any]
    path: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        child = construct.node.default_child or construct
        return str(self.stack.get_logical_id(child))


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by all xdist workers of this run (the session's own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _synth(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *,
    validation: bool,
    context: dict[str, Any] | None = None,
) -> Synth:
    from infra.app import build_app

    root = shared_dir(tmp_path_factory) / f"cdk-{name}"
    root.mkdir(parents=True, exist_ok=True)
    app, stack = build_app(validation=validation, outdir=str(root / "out"), context=context)
    with exclusive(root / ".lock"):
        done = root / "synthesized"
        if not done.exists():
            app.synth()  # raises ValidationFailed on any open cdk-nag finding
            done.write_text(stack.stack_name)
    path = root / "out" / f"{stack.stack_name}.template.json"
    return Synth(stack=stack, template=json.loads(path.read_text()), path=path)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Default context, no cdk-nag (fast): what the assertion tests read."""
    return _synth(tmp_path_factory, "default", validation=False)


@pytest.fixture(scope="session")
def nag_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Default context with cdk-nag AwsSolutions; building it at all means zero open findings."""
    return _synth(tmp_path_factory, "nag", validation=True)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Every non-default branch of the stack, with cdk-nag on."""
    return _synth(tmp_path_factory, "variant", validation=True, context=VARIANT_CONTEXT)
