"""Entry point of the CDK app: ``make synth``, ``npx cdk synth``, ``npx cdk deploy``.

Run by the CDK CLI (which passes context and the output folder through ``CDK_CONTEXT_JSON`` /
``CDK_OUTDIR``) or directly with Python. Run directly, it reads ``cdk.json``'s context itself, so
both ways synthesize the same template, pinned availability zones included.

``CDK_VALIDATION=false`` skips the cdk-nag AwsSolutions checks (about half the synth time); they
run by default.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Before aws_cdk starts its jsii node process: the banner about Node 20's support window is noise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python infra/app.py`: make `infra` importable
    sys.path.insert(0, str(ROOT))

import aws_cdk as cdk  # noqa: E402

from infra.config import DEFAULT_ACCOUNT, DEFAULT_REGION, load_config  # noqa: E402
from infra.stack import CollabStack  # noqa: E402

STACK_NAME = "Collab"


def validation_enabled(environ: dict[str, str] | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get("CDK_VALIDATION", "true")
    return value.strip().lower() not in ("false", "0", "no", "off")


def cdk_json_context() -> dict[str, Any]:
    with open(ROOT / "cdk.json", encoding="utf-8") as handle:
        return dict(json.load(handle).get("context", {}))


def build_app(
    *,
    validation: bool | None = None,
    outdir: str | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[cdk.App, CollabStack]:
    """The app and its one stack; tests call this with their own outdir and context overrides."""
    merged = cdk_json_context()
    if "CDK_CONTEXT_JSON" not in os.environ:
        merged.update(context or {})
    else:  # the CLI already merged cdk.json, cdk.context.json and -c options
        merged = {**(context or {})}
    app = cdk.App(outdir=outdir, context=merged or None)
    config = load_config(app)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT") or app.node.try_get_context("account") or DEFAULT_ACCOUNT
    region = os.environ.get("CDK_DEFAULT_REGION") or app.node.try_get_context("region") or DEFAULT_REGION
    stack = CollabStack(
        app,
        STACK_NAME,
        config=config,
        env=cdk.Environment(account=str(account), region=str(region)),
        description="Collab: real-time collaboration backend of a task board",
    )
    # DBProxyTargetGroup takes no Tags although CDK treats it as taggable (cfn-lint E3002).
    cdk.Tags.of(app).add("project", "collab", exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    if validation if validation is not None else validation_enabled():
        from cdk_nag import AwsSolutionsChecks

        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    outdir = None if "CDK_OUTDIR" in os.environ else str(ROOT / "cdk.out")
    app, _ = build_app(outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
