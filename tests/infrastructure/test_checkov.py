"""Checkov, the second outside judge: zero failed checks, and every skip declared, used and explained.

The CDK app writes each Checkov skip into its resource's template metadata from the same ledger as
the cdk-nag acknowledgments (``infra/nag.py``). Checkov runs once per test session on both
synthesized templates (default and variant), in one subprocess shared by the xdist workers
(``checkov_scan``: ~10 s on the 2-core machine, mostly Checkov's import and four scans), and:

- must fail no check;
- must skip exactly what the ledger declares, with the ledger's reason as the comment;
- must fail exactly those checks once the skips are removed: a skip whose check would pass is stale.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnElement

from infra.layers import exclusive
from infra.nag import is_checkov
from tests.infrastructure.conftest import Synth, shared_dir

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

ROOT = Path(__file__).resolve().parents[2]

# Every check acknowledged on the default stack; anything new must be reviewed (and documented).
EXPECTED_CHECKS = {
    "CKV_AWS_116",  # dead-letter queue: functions invoked synchronously
    "CKV_AWS_117",  # VPC: CDK's Provider framework function
    "CKV_AWS_118",  # RDS enhanced monitoring
    "CKV_AWS_161",  # RDS IAM authentication
}


@pytest.fixture(scope="session")
def reports(nag_synth: Synth, variant: Synth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Checkov's findings for the default and variant templates, computed once per run."""
    cache = shared_dir(tmp_path_factory) / "checkov.json"
    with exclusive(shared_dir(tmp_path_factory) / "checkov.lock"):
        if not cache.exists():
            cache.write_text(json.dumps(_checkov(nag_synth.path, variant.path)))
    by_path = json.loads(cache.read_text())
    return {"nag_synth": by_path[str(nag_synth.path)], "variant": by_path[str(variant.path)]}


def _checkov(*templates: Path) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tests.infrastructure.checkov_scan", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout))


def declared(synth: Synth) -> dict[tuple[str, str], str]:
    """(logical id, check id) -> reason, for every Checkov skip in the stack's ledger."""
    logical_ids = {
        element.node.path: synth.stack.get_logical_id(element)
        for element in synth.stack.node.find_all()
        if isinstance(element, CfnElement)
    }
    return {
        (logical_ids[path], rule): reason
        for path, rule, reason in synth.stack.acknowledgments
        if is_checkov(rule)
    }


@pytest.mark.parametrize("which", ["nag_synth", "variant"])
def test_zero_failed_checks(reports: dict[str, Any], which: str) -> None:
    report = reports[which]
    assert report["failed"] == [], json.dumps(report["failed"], indent=1)
    assert report["passed"] > 300, "Checkov scanned next to nothing: did the template parse?"


@pytest.mark.parametrize("which", ["nag_synth", "variant"])
def test_skips_are_exactly_the_ledger_with_its_reasons(
    request: pytest.FixtureRequest, reports: dict[str, Any], which: str
) -> None:
    synth: Synth = request.getfixturevalue(which)
    expected = declared(synth)
    skipped = {(lid, check): comment for lid, check, comment in reports[which]["skipped"]}
    assert skipped == expected


@pytest.mark.parametrize("which", ["nag_synth", "variant"])
def test_no_stale_skip_and_no_unexplained_failure(
    request: pytest.FixtureRequest, reports: dict[str, Any], which: str
) -> None:
    synth: Synth = request.getfixturevalue(which)
    would_fail = {(lid, check) for lid, check in reports[which]["unsuppressed_failed"]}
    skips = set(declared(synth))
    assert skips - would_fail == set(), "skips whose check passes without them: remove them"
    assert would_fail - skips == set(), "failures without an acknowledgment"


def test_default_stack_acknowledges_only_the_reviewed_checks(nag_synth: Synth) -> None:
    assert {check for _, check in declared(nag_synth)} == EXPECTED_CHECKS
    for (lid, check), reason in declared(nag_synth).items():
        assert len(reason) >= 80, f"{check} on {lid}: reason too thin: {reason!r}"


def test_variant_acknowledges_the_choices_it_made(variant: Synth) -> None:
    checks = {check for _, check in declared(variant)}
    assert {"CKV_AWS_115", "CKV_AWS_157"} <= checks  # reservedConcurrency=false, dbMultiAz=false
    functions = variant.of_type("AWS::Lambda::Function")
    unreserved = {lid for lid, check in declared(variant) if check == "CKV_AWS_115"}
    assert unreserved == set(functions)


def test_every_acknowledged_check_is_in_the_deploy_guide(nag_synth: Synth, variant: Synth) -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for synth in (nag_synth, variant):
        for _, check in declared(synth):
            assert f"| {check} |" in guide, f"docs/deploy.md should explain Checkov {check} in its table"
