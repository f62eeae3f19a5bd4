"""The migrations custom resource handler (functions/migrate/handler.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

pytestmark = [pytest.mark.infra]

HANDLER = Path(__file__).resolve().parents[2] / "functions" / "migrate" / "handler.py"


@pytest.fixture
def handler_module() -> ModuleType:
    # Loaded from its file, as Lambda does (the asset root is the function folder).
    spec = importlib.util.spec_from_file_location("migrate_handler_under_test", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def migrations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    import collab.adapters.postgres.migrate
    import collab.config

    def fake_migrate(dsn: str) -> list[str]:
        calls.append(dsn)
        return ["0001_initial", "0002_more"]

    monkeypatch.setattr(collab.adapters.postgres.migrate, "migrate", fake_migrate)
    monkeypatch.setattr(
        collab.config, "get_settings", lambda: SimpleNamespace(dsn="postgresql://proxy/collab")
    )
    return calls


def event(request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResourceType": "Custom::CollabSchema",
        "ResourceProperties": {"MigrationsHash": "abc"},
        **extra,
    }


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_apply_migrations(
    handler_module: ModuleType, migrations: list[str], request_type: str
) -> None:
    extra = {"PhysicalResourceId": "collab-schema"} if request_type == "Update" else {}
    result = handler_module.handler(event(request_type, **extra), None)
    assert migrations == ["postgresql://proxy/collab"]
    assert result == {"PhysicalResourceId": "collab-schema", "Data": {"Applied": "0001_initial,0002_more"}}


def test_delete_touches_nothing(
    handler_module: ModuleType, migrations: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even without configuration or a database, a Delete must succeed.
    monkeypatch.setitem(sys.modules, "collab.adapters.postgres.migrate", None)
    result = handler_module.handler(event("Delete", PhysicalResourceId="collab-schema"), None)
    assert result == {"PhysicalResourceId": "collab-schema"}
    assert migrations == []


def test_physical_id_is_stable_so_updates_never_replace(
    handler_module: ModuleType, migrations: list[str]
) -> None:
    first = handler_module.handler(event("Create"), None)
    second = handler_module.handler(event("Update", PhysicalResourceId=first["PhysicalResourceId"]), None)
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"]
