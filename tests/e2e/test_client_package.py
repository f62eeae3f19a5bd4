"""@collab/client as a package: strict types with zero errors, misspelt fields that do not compile,
a clean `npm pack`, and web/collab-client.js equal to a fresh build of the package.

Needs `make client` (npm ci and the build in packages/collab-client; `make test` runs it first).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "collab-client"
TSC = PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"


def node(*args: str, cwd: Path = PACKAGE) -> subprocess.CompletedProcess[str]:
    if not (PACKAGE / "node_modules").exists() or not (PACKAGE / "dist" / "index.d.ts").exists():
        pytest.fail("packages/collab-client is not built: run `make client`", pytrace=False)
    return subprocess.run(["node", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_committed_web_bundle_is_a_fresh_build_of_the_package() -> None:
    run = node("scripts/build.mjs", "--check")
    assert run.returncode == 0, run.stderr


def test_the_package_source_is_strict_typescript_with_zero_errors() -> None:
    run = node(str(TSC), "-p", "tsconfig.json", "--noEmit")
    assert (run.returncode, run.stdout) == (0, "")
    config = json.loads((PACKAGE / "tsconfig.json").read_text())["compilerOptions"]
    assert config["strict"] and config["exactOptionalPropertyTypes"] and config["noUncheckedIndexedAccess"]


def test_the_demo_board_is_check_js_strict_against_the_package_types() -> None:
    # web/app.js imports "/collab-client.js"; web/tsconfig.json maps it to the package's source
    run = node(str(TSC), "-p", str(ROOT / "web" / "tsconfig.json"))
    assert (run.returncode, run.stdout) == (0, "")


def test_every_expected_type_error_is_an_error() -> None:
    # type-tests/fields.ts marks each misuse with @ts-expect-error: one that compiled would fail here
    run = node(str(TSC), "-p", "type-tests/tsconfig.json")
    assert (run.returncode, run.stdout) == (0, "")


def test_misspelt_fields_and_bad_enum_values_do_not_compile(tmp_path: Path) -> None:
    # Given an app that imports the built package (its declarations, as an app gets them)
    (tmp_path / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "module": "ES2022",
                    "moduleResolution": "Bundler",
                    "target": "ES2022",
                    "lib": ["ES2022", "DOM"],
                    "types": [],
                    "paths": {"@collab/client": [str(PACKAGE / "dist" / "index.d.ts")]},
                },
                "files": ["app.ts"],
            }
        )
    )
    (tmp_path / "app.ts").write_text(
        'import { CollabClient } from "@collab/client";\n'
        'const client = new CollabClient({ workspaceId: "w", token: "t" });\n'
        'client.updateTask("id", { titel: "x" });\n'
        'client.createTask({ title: "x", priority: "critical" });\n'
        'client.updateTask("id", { status: "finished" });\n'
        'client.updateTask("id", { title: "fine", due_date: null });\n'
    )
    # When it is compiled, Then the three misuses are errors, on their lines, and the good call is not
    run = node(str(TSC), "-p", str(tmp_path / "tsconfig.json"), cwd=tmp_path)
    print(run.stdout)
    errors = [line for line in run.stdout.splitlines() if ": error TS" in line]
    assert run.returncode != 0
    assert [e.split("(", 1)[1].split(",")[0] for e in errors] == ["3", "4", "5"]
    assert "'titel' does not exist in type 'TaskChanges'" in errors[0]
    assert '"critical"' in errors[1] and '"finished"' in errors[2]


def test_npm_pack_ships_the_built_esm_and_declarations_only() -> None:
    npm = shutil.which("npm")
    assert npm, "npm is missing (Node 20 + npm are required)"
    # dist/ is what `make client` built (prepack would rebuild it: skipped, another test may be reading it)
    run = subprocess.run(
        [npm, "pack", "--dry-run", "--json", "--ignore-scripts"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    [pack] = json.loads(run.stdout)
    files = sorted(f["path"] for f in pack["files"])
    print(f"npm pack: {pack['filename']} {pack['size']} bytes, {len(files)} files: {files}")
    assert pack["name"] == "@collab/client"
    assert {
        "package.json",
        "README.md",
        "dist/index.js",
        "dist/index.d.ts",
        "dist/react.js",
        "dist/react.d.ts",
    } <= set(files)
    assert all(
        f in ("package.json", "README.md") or f.startswith("dist/") for f in files
    )  # no src, tests, scripts
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["exports"]["."] == {"types": "./dist/index.d.ts", "import": "./dist/index.js"}
    assert manifest["exports"]["./react"] == {"types": "./dist/react.d.ts", "import": "./dist/react.js"}
    assert manifest["peerDependencies"] == {"react": ">=18"}


def test_the_api_reference_in_docs_client_md_is_generated_from_the_types() -> None:
    run = node("scripts/api-reference.mjs", "--check")
    assert run.returncode == 0, run.stderr
    text = (ROOT / "docs" / "client.md").read_text()
    for name in (
        "class `CollabClient`",
        "function `useTasks`",
        "type `ConnectionState`",
        "getSnapshot(): Snapshot",
    ):
        assert name in text, name
