"""The committed protocol files in web/ are what the pydantic models generate (no drift)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collab_dev import schema_export

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"


def test_committed_schema_and_types_match_the_models() -> None:
    # Given the files in web/ and the package's protocol.ts, When the models are exported again,
    # Then nothing differs.
    assert schema_export.stale(ROOT) == [], (
        "run `python -m collab_dev.schema_export` (make schema) and commit"
    )


def test_the_package_types_carry_the_schema_limits() -> None:
    text = (ROOT / schema_export.PACKAGE_TYPES).read_text()
    assert text.startswith((WEB / schema_export.TYPES_FILE).read_text())  # the same types, then the limits
    assert "title: { minLength: 1, maxLength: 200," in text
    assert "assigned_to: { minLength: 1, maxLength: 128," in text and "nullable: true" in text
    assert 'export const TASK_PRIORITY_VALUES = ["low", "medium", "high", "urgent"] as const;' in text


def test_types_cover_every_frame_of_the_protocol() -> None:
    from collab.protocol import client_frames

    schema = json.loads((WEB / schema_export.SCHEMA_FILE).read_text())
    types = (WEB / schema_export.TYPES_FILE).read_text()
    actions = {m["properties"]["action"]["const"] for m in _members(schema, "ClientFrame")}
    assert actions == set(client_frames.ACTIONS)
    server_types = {t for m in _members(schema, "ServerFrame") for t in _literals(m["properties"]["type"])}
    assert {
        "task.created",
        "ack",
        "sync",
        "heartbeat.ack",
        "presence.left",
        "notification.created",
    } <= server_types
    for name in (
        "ClientFrame",
        "ServerFrame",
        "Task",
        "AckData",
        "SyncData",
        "PresenceEntry",
        "Notification",
    ):
        assert f"export type {name} " in types or f"export interface {name} " in types, name
    assert 'type: "task.created" | "task.updated" | "task.deleted";' in types


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "collab_dev.schema_export", "--out", str(tmp_path)]
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 1  # nothing there yet
    assert subprocess.run(run, capture_output=True).returncode == 0
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 0
    (tmp_path / "web" / schema_export.TYPES_FILE).write_text("// edited by hand\n")
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 1


def _members(schema: dict, union: str) -> list[dict]:
    defs = schema["$defs"]
    return [defs[ref["$ref"].rsplit("/", 1)[1]] for ref in defs[union]["oneOf"]]


def _literals(node: dict) -> list[str]:
    return [node["const"]] if "const" in node else list(node.get("enum", []))
