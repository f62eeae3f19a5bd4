"""Checkov on synthesized templates, for the infrastructure tests: ``python -m tests.infrastructure.checkov_scan T...``.

Each template is scanned twice in one process (Checkov's import, ~1.5 s, dominates a scan of ~1.5 s):
as synthesized, with the skips the CDK app writes into resource metadata, and as a copy with every
skip removed. The second scan is what the stack would show without its acknowledgments, so a skip
whose check passes anyway (stale) and a failure nobody acknowledged are both visible.
Prints one JSON object: template path -> {passed, failed, skipped, unsuppressed_failed}.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def _scan(path: Path) -> Any:
    from checkov.cloudformation.runner import Runner
    from checkov.runner_filter import RunnerFilter

    return Runner().run(
        root_folder=None, files=[str(path)], runner_filter=RunnerFilter(framework=["cloudformation"])
    )


def _logical_id(record: Any) -> str:
    return str(record.resource).split(".", 1)[1]  # "AWS::Lambda::Function.FunctionsApi45DE0CE2"


def _without_skips(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template.get("Resources", {}).values():
        resource.get("Metadata", {}).pop("checkov", None)
    return template


def scan(path: Path) -> dict[str, Any]:
    report = _scan(path)
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / path.name
        bare.write_text(json.dumps(_without_skips(json.loads(path.read_text()))))
        unsuppressed = _scan(bare)
    return {
        "passed": len(report.passed_checks),
        "failed": sorted([_logical_id(r), r.check_id] for r in report.failed_checks),
        "skipped": sorted(
            [_logical_id(r), r.check_id, r.check_result.get("suppress_comment", "")]
            for r in report.skipped_checks
        ),
        "unsuppressed_failed": sorted([_logical_id(r), r.check_id] for r in unsuppressed.failed_checks),
    }


def main(argv: list[str]) -> None:
    print(json.dumps({path: scan(Path(path)) for path in argv}))


if __name__ == "__main__":
    main(sys.argv[1:])
