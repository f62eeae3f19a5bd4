"""cfn-lint on the synthesized templates: no errors; each remaining warning is known and documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.layers import exclusive
from tests.infrastructure.conftest import Synth, shared_dir

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

ROOT = Path(__file__).resolve().parents[2]

# Warnings we keep, each explained under "cfn-lint" in docs/deploy.md:
# W3010: the availability zones are pinned through cdk.json context (required for offline synth).
# W3005: CDK adds an explicit DependsOn from each function to its role next to the GetAtt.
ACCEPTED_WARNINGS = {"W3010", "W3005"}


@pytest.fixture(scope="session")
def findings(synth: Synth, variant: Synth, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """cfn-lint's findings for both templates, computed once per run (shared by xdist workers)."""
    cache = shared_dir(tmp_path_factory) / "cfn-lint.json"
    with exclusive(shared_dir(tmp_path_factory) / "cfn-lint.lock"):
        if not cache.exists():
            cache.write_text(json.dumps(_lint(synth.path, variant.path)))
    return json.loads(cache.read_text())


def _lint(*templates: Path) -> list[dict[str, Any]]:
    # One process for both templates: cfn-lint's start-up (loading its schemas) dominates.
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            "--format",
            "json",
            *map(str, templates),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # exit code is a bit mask: 2 errors, 4 warnings, 8 informational; anything else is a crash
    assert run.returncode & ~0b1110 == 0, run.stderr[-3000:]
    return list(json.loads(run.stdout or "[]"))


def test_no_errors(findings: list[dict[str, Any]]) -> None:
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == [], json.dumps(errors, indent=1)[:4000]


def test_only_known_warnings(findings: list[dict[str, Any]]) -> None:
    rules = {f["Rule"]["Id"] for f in findings if f["Level"] == "Warning"}
    assert rules <= ACCEPTED_WARNINGS, json.dumps(
        [f for f in findings if f["Rule"]["Id"] not in ACCEPTED_WARNINGS]
    )


def test_known_warnings_are_explained_in_the_deploy_guide() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for rule in ACCEPTED_WARNINGS:
        assert rule in guide, f"docs/deploy.md should explain cfn-lint {rule}"
