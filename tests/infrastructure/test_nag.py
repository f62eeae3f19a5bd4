"""cdk-nag AwsSolutions: zero open findings, and every acknowledgment is used, specific and explained.

The synth with the checks on raises ``ValidationFailed`` on any open finding, so the fixtures only
exist for a clean stack. The validation report CDK writes beside the template then tells which
findings were acknowledged; it must match the list in ``infra/nag.py`` exactly, so a fixed finding
leaves no stale acknowledgment behind.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.nag import is_checkov
from tests.infrastructure.conftest import Synth

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

# The complete list of rules acknowledged on the default stack; anything new must be reviewed.
EXPECTED_RULES = {
    "AwsSolutions-SMG4",
    "AwsSolutions-AEC5",
    "AwsSolutions-RDS11",
    "AwsSolutions-IAM4",
    "AwsSolutions-IAM5",
    "AwsSolutions-APIG4",
    "AwsSolutions-L1",  # Python 3.13: the newest runtime our build machines can compile bytecode for
}


def nag_entries(synth: Synth) -> list[tuple[str, str, str]]:
    """The ledger's cdk-nag acknowledgments (its Checkov skips are tested in test_checkov.py)."""
    return [entry for entry in synth.stack.acknowledgments if not is_checkov(entry[1])]


def aws_solutions_report(synth: Synth) -> dict[str, Any]:
    report = json.loads((synth.path.parent / "validation-report.json").read_text())
    [plugin] = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return plugin


@pytest.mark.parametrize("which", ["nag_synth", "variant"])
def test_no_open_findings_and_no_stale_acknowledgments(request: pytest.FixtureRequest, which: str) -> None:
    synth: Synth = request.getfixturevalue(which)
    plugin = aws_solutions_report(synth)
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    suppressed = {
        (s["acknowledgedAt"], s["acknowledgedId"].removeprefix("AwsSolutions::"))
        for s in plugin["suppressedViolations"]
    }
    declared = {(path, rule) for path, rule, _ in nag_entries(synth)}
    assert declared == suppressed


def test_variant_acknowledges_only_the_choices_it_made(variant: Synth) -> None:
    rules = {rule.split("[")[0] for _, rule, _ in nag_entries(variant)}
    # single-AZ, unprotected data stores are acknowledged only when chosen by context
    assert {"AwsSolutions-AEC4", "AwsSolutions-RDS3", "AwsSolutions-RDS10"} <= rules
    # with the JWT authorizer in place, the HTTP route needs no APIG4 exception
    http_route = variant.stack.http.api.node.find_child("DefaultRoute").node.path
    assert not [a for a in nag_entries(variant) if a[0].startswith(http_route)]


def test_each_acknowledgment_names_a_rule_a_resource_and_a_specific_reason(nag_synth: Synth) -> None:
    entries = nag_entries(nag_synth)
    assert {rule.split("[")[0] for _, rule, _ in entries} == EXPECTED_RULES
    for path, rule, reason in entries:
        assert path.startswith("Collab/") and path.count("/") >= 2, f"{rule} must sit on a resource"
        assert len(reason) >= 60, f"{rule} on {path}: reason too thin: {reason!r}"
    assert len({(p, r) for p, r, _ in entries}) == len(entries), "duplicate acknowledgment"


def test_wildcards_are_acknowledged_one_finding_at_a_time(nag_synth: Synth) -> None:
    for path, rule, _ in nag_entries(nag_synth):
        if rule.startswith(("AwsSolutions-IAM5", "AwsSolutions-IAM4")):
            assert "[" in rule, f"{rule} on {path} must name the exact finding"
        if rule == "AwsSolutions-IAM5[Resource::*]":
            assert path.startswith("Collab/Functions/"), "only VPC ENI and X-Ray statements may use *"
